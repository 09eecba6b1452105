"""A Recommendation as the studio shows it, on the Optimize and the Approvals pages alike: what it
changes (setpoints, a schedule with its Gantt, an energy plan's commands), its replay in the twin
(baseline and predicted KPIs with 95 % CIs and their paired difference), where it came from, and
the envelope's verdict (its status and problems)."""
from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
from dash import dcc, html

from studio.web.common import CARD, ERROR, LOWER_IS_BETTER, NOTE, fmt, signed, table

#: the colour of each lifecycle status (docs/api.md#recommendations)
STATUS_COLOURS = {"draft": "#8a6d00", "validated": "#1f77b4", "approved": "#6f42c1", "pushed": "#b45f06",
                  "verified": "#1a7f37", "rolled_back": "#b00020", "rejected": "#555"}


def status_badge(status: str) -> html.Span:
    return html.Span(status, className=f"status status-{status}", style={
        "background": STATUS_COLOURS.get(status, "#555"), "color": "white", "borderRadius": "10px",
        "padding": "2px 10px", "fontSize": "13px", "fontWeight": "600"})


def label(rec: dict[str, Any]) -> str:
    """A recommendation in a picker: short id, kind, scenario, status, when."""
    return f"{rec['id'][:8]} · {rec['kind']} · {rec['scenario']} · {rec['status']} · {rec['created_at'][:19]}"


def view(rec: dict[str, Any]) -> html.Div:
    """The whole card of a recommendation as ``GET /recommendations/{id}`` returns it."""
    doc = rec["document"]
    parts: list[Any] = [
        html.Div([
            html.H3(["Recommendation ", html.Code(rec["id"][:8], id="rec-id", title=rec["id"]), " ",
                     status_badge(rec["status"])], style={"margin": "0 0 4px"}),
            html.Div(f"{rec['kind']} for {rec['scenario']} · made by {rec.get('created_by') or '–'} "
                     f"on {rec['created_at'][:19]}" + _approval(rec), style=NOTE),
        ]),
        verdict(rec),
        html.H4("What it changes"),
        payload(doc),
        html.H4("Replay in the twin"),
        html.Div(f"{_replications(doc)} · 95 % confidence intervals · the difference is paired (predicted − "
                 f"baseline under common random numbers), * = its CI excludes 0.", style=NOTE),
        kpi_table(doc),
    ]
    chart = difference_chart(doc)
    if chart is not None:
        parts.append(dcc.Graph(id="rec-diff-chart", figure=chart))
    parts.append(html.Div(provenance(doc), style={**NOTE, "marginTop": "6px"}))
    if rec.get("last_push"):
        parts.append(last_push(rec["last_push"]))
    return html.Div(parts, id="rec-view", style=CARD)


def _approval(rec: dict[str, Any]) -> str:
    if not rec.get("approved_by"):
        return ""
    return f" · approved by {rec['approved_by']} until {(rec.get('expires_at') or '')[:19]}"


def _replications(doc: dict[str, Any]) -> str:
    n = doc.get("provenance", {}).get("replications")
    return f"{n} replications each" if n else "replications as the optimizer ran them"


def verdict(rec: dict[str, Any]) -> html.Div:
    """The envelope's verdict: validated (the offline checks pass) or the problems that keep it a draft."""
    problems = rec.get("problems") or []
    if problems:
        body: list[Any] = [html.B("The envelope refuses it: "),
                           html.Ul([html.Li(p) for p in problems], style={"margin": "4px 0"})]
        style = {**ERROR, "fontSize": "14px"}
    elif rec["status"] == "draft":
        body, style = [html.B("Not validated yet.")], NOTE
    else:
        body = [html.B("Envelope: "), "the offline checks pass (fingerprint, declared tags, hard limits, interlocks)."]
        style = {"color": "#1a7f37", "fontSize": "14px"}
    return html.Div(body, id="rec-verdict", style={**style, "margin": "8px 0"})


# ------------------------------------------------------------------------------------ the payload

def payload(doc: dict[str, Any]) -> Any:
    kind, data = doc["kind"], doc["payload"]
    if kind == "setpoints":
        rows = [[f"{station}.{param}", fmt(value, digits=6)] for station, params in sorted(data.items())
                for param, value in sorted(params.items())]
        return table(["setpoint", "recommended value"], rows, id="rec-setpoints")
    if kind == "schedule":
        return html.Div([
            html.Div(f"{data.get('instance')} · {data.get('solver')} · makespan {data.get('makespan')} "
                     f"(lower bound {data.get('lower_bound')}) · {data.get('status')}", style=NOTE),
            dcc.Graph(id="rec-gantt", figure=gantt(data)),
        ])
    if kind == "energy_plan":
        model = data.get("model", {})
        rows = [[clock(data, c["t"]), c.get("station", ""), c.get("state", "")] for c in data.get("commands", [])]
        return html.Div([
            html.Div(f"stations {', '.join(data.get('stations', []))} · slot {data.get('slot')} "
                     f"{data.get('time_unit', '')} · horizon {data.get('horizon')} · target {data.get('target')} · "
                     f"model: {fmt(model.get('energy_kwh'))} kWh, {fmt(model.get('energy_cost'))} "
                     f"{model.get('currency', '')} ({model.get('status')})", style=NOTE),
            table(["at", "station", "state from then on"], rows, id="rec-commands"),
        ])
    return html.Pre(str(data)[:2000])


#: seconds per scenario time unit
UNIT_S = {"s": 1.0, "min": 60.0, "h": 3600.0}


def clock(plan: dict[str, Any], t: float) -> str:
    """``t`` (scenario time units from the plan's start) as the time of day, with the day after the first."""
    hh, mm = (int(x) for x in str(plan.get("start_clock", "00:00")).split(":"))
    minutes = hh * 60 + mm + float(t) * UNIT_S.get(str(plan.get("time_unit", "s")), 1.0) / 60
    day, rest = divmod(round(minutes), 24 * 60)
    return f"{rest // 60:02d}:{rest % 60:02d}" + (f" (day {day + 1})" if day else "")


def gantt(data: dict[str, Any]) -> go.Figure:
    """The schedule's Gantt chart (twins/jobshop/gantt.py) from a schedule recommendation's payload."""
    from twins.jobshop.gantt import gantt_figure
    from twins.jobshop.schedule import Schedule, ScheduledOperation

    ops = [ScheduledOperation(float(o["start"]), float(o["end"]), int(o["job"]), int(o["op"]), int(o["machine"]))
           for o in data.get("operations", [])]
    fig = gantt_figure(Schedule(str(data.get("instance", "")), ops))
    fig.update_layout(template="plotly_white", height=max(260, 40 * len({o.machine for o in ops}) + 120),
                      margin={"l": 60, "r": 20, "t": 50, "b": 40})
    return fig


# ------------------------------------------------------------------------------------ the replay

def _significant(d: dict[str, Any]) -> bool:
    mean, hw = d.get("mean"), d.get("half_width")
    return mean is not None and hw is not None and abs(mean) > hw


def _nothing(e: dict[str, Any]) -> bool:
    """An estimate that says nothing: no value, or exactly 0 in every replication (energy KPIs of a
    line without power data)."""
    return not e.get("mean") and not e.get("half_width")


def kpi_table(doc: dict[str, Any]) -> html.Table:
    """Baseline, predicted and their paired difference per KPI (KPIs that are 0 in both are left out)."""
    base, pred, diff = doc.get("baseline", {}), doc.get("predicted", {}), doc.get("difference", {})
    rows = []
    for k in sorted(set(base) | set(pred), key=lambda k: (k not in diff, k)):
        b, p, d = base.get(k, {}), pred.get(k, {}), diff.get(k)
        if _nothing(b) and _nothing(p):
            continue
        unit = (b or p).get("unit", "")
        cell: Any = "–"
        if d is not None:
            sig = _significant(d)
            better = ((d["mean"] or 0) > 0) != (k in LOWER_IS_BETTER)
            cell = html.Span(signed(d.get("mean"), d.get("half_width")) + (" *" if sig else ""),
                             className="significant" if sig else "not-significant",
                             style={"fontWeight": "700" if sig else "400",
                                    "color": ("#1a7f37" if better else "#b00020") if sig else "#333"})
        rows.append([f"{k} [{unit}]" if unit else k, fmt(b.get("mean"), b.get("half_width")),
                     fmt(p.get("mean"), p.get("half_width")), cell])
    return table(["KPI", "baseline", "predicted", "difference"], rows, id="rec-kpis")


def difference_chart(doc: dict[str, Any]) -> go.Figure | None:
    """Each KPI's paired difference in % of its baseline, with its CI: one axis for KPIs of any unit."""
    base, diff = doc.get("baseline", {}), doc.get("difference", {})
    names, pct, hw = [], [], []
    for k, d in diff.items():
        b = base.get(k, {}).get("mean")
        if d.get("mean") is None or not b:
            continue
        names.append(k)
        pct.append(100 * d["mean"] / abs(b))
        hw.append(100 * (d.get("half_width") or 0) / abs(b))
    if not names:
        return None
    fig = go.Figure(go.Bar(x=names, y=pct, error_y={"type": "data", "array": hw},
                           marker_color=["#1a7f37" if (v > 0) != (k in LOWER_IS_BETTER) else "#b00020"
                                         for k, v in zip(names, pct, strict=True)]))
    fig.update_layout(title="Predicted − baseline, % of baseline (paired, 95 % CI)", template="plotly_white",
                      height=320, margin={"l": 50, "r": 20, "t": 50, "b": 80}, yaxis_title="%")
    return fig


def provenance(doc: dict[str, Any]) -> str:
    p = doc.get("provenance", {})
    parts = [f"method {p.get('method')}", f"seed {p.get('seed')}"]
    if p.get("budget") is not None:
        parts.append(f"budget {p['budget']}")
    if p.get("solver_status"):
        parts.append(f"solver {p['solver_status']}" + (f" (gap {p['gap']:.3g})" if p.get("gap") is not None else ""))
    if p.get("wall_time_s") is not None:
        parts.append(f"{p['wall_time_s']:.1f} s")
    parts.append(f"scenario fingerprint {str(doc.get('scenario_fingerprint', ''))[:12]}")
    return "Provenance: " + " · ".join(parts)


def last_push(push: dict[str, Any]) -> html.Div:
    what = "dry run" if push.get("dry_run") else "push"
    return html.Div([html.B(f"Last {what}: "), f"{push.get('outcome')} to {push.get('endpoint')} by {push.get('by')} "
                     f"at {str(push.get('at', ''))[:19]}" + (f" — {push['detail']}" if push.get("detail") else "")],
                    id="rec-last-push", style={**NOTE, "marginTop": "6px"})
