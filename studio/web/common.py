"""Shared pieces of the studio's pages: the API client of the signed-in key, number formatting,
the look of tables and messages."""
from __future__ import annotations

from typing import Any

from dash import html

from studio.api.client import ApiError, Client
from studio.output import fmt  # noqa: F401  # the pages format numbers as the CLI's tables do

#: the studio's API base URL, set by :func:`studio.web.app.create_app`
API = {"url": "http://127.0.0.1:8000"}
#: the KPIs the pages show first
KPIS = ("throughput", "lead_time", "wip", "scrap_rate", "oee", "energy_kwh_per_unit", "energy_cost", "margin")
#: KPIs where less is better (a significant decrease is shown green)
LOWER_IS_BETTER = frozenset({"lead_time", "lead_time_p95", "wip", "scrap_rate", "energy_kwh_per_unit", "energy_cost",
                             "energy_kwh", "energy_cost_per_unit", "co2_kg", "makespan", "tardiness",
                             "energy_kwh_busy", "energy_kwh_idle", "energy_kwh_setup", "energy_kwh_standby",
                             "energy_kwh_off"})


def client(key: str | None) -> Client:
    return Client(API["url"], key or None, timeout=60)


def api_error(err: ApiError) -> str:
    """One readable line from an API error (422 items name the field and the line)."""
    detail = err.detail
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):
        items = []
        for d in detail[:3]:
            loc = ".".join(str(x) for x in d.get("loc", []) if x != "body")
            line = f" (line {d['line']})" if d.get("line") else ""
            items.append(f"{loc}{line}: {d.get('msg')}")
        return "; ".join(items)
    return f"{detail}" if detail else f"HTTP {err.status}"


def signed(mean: Any, hw: Any = None, digits: int = 3) -> str:
    if mean is None:
        return "–"
    text = f"{mean:+.{digits}g}"
    if hw is not None:
        text += f" ± {hw:.2g}"
    return text


TABLE = {"borderCollapse": "collapse", "fontSize": "13px", "margin": "8px 0"}
CELL = {"borderBottom": "1px solid #ddd", "padding": "4px 10px", "textAlign": "right",
        "fontVariantNumeric": "tabular-nums"}
HEAD = {**CELL, "background": "#f4f6f8", "textAlign": "left"}
ERROR = {"color": "#b00020", "fontSize": "13px"}
NOTE = {"color": "#555", "fontSize": "13px"}
CARD = {"border": "1px solid #e3e6ea", "borderRadius": "6px", "padding": "12px 16px", "margin": "10px 0",
        "background": "white"}
BUTTON = {"padding": "6px 14px", "marginRight": "8px", "cursor": "pointer"}


def table(header: list[str], rows: list[list[Any]], id: str | None = None) -> html.Table:
    head = html.Tr([html.Th(h, style=HEAD) for h in header])
    body = [html.Tr([html.Td(c, style={**CELL, "textAlign": "left"} if i == 0 else CELL) for i, c in enumerate(r)])
            for r in rows]
    t = html.Table([html.Thead(head), html.Tbody(body)], style=TABLE)
    if id:
        t.id = id  # type: ignore[attr-defined]  # dash components take id as a property
    return t


def progress_bar(fraction: float, label: str, id: str | None = None) -> html.Div:
    bar = html.Div([
        html.Div(style={"width": f"{max(0.0, min(fraction, 1.0)) * 100:.0f}%", "height": "100%",
                        "background": "#1f77b4", "transition": "width 0.3s"}),
    ], style={"width": "320px", "height": "10px", "background": "#e8ecf0", "borderRadius": "5px",
              "overflow": "hidden", "display": "inline-block", "marginRight": "10px"}, title=label)
    if id:
        bar.id = id  # type: ignore[attr-defined]
    return bar
