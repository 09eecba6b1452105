"""HTML report of a scenario run: KPI table with CIs and plotly figures (self-contained file).

Figures: station state breakdown, OEE components per station, WIP and queues over time, energy
by machine state, power drawn against the electricity price over time. Time series come from the
first replication (``replicate(..., sample_every=…)``); everything else is averaged over all
replications with 95 % confidence intervals.
"""
from __future__ import annotations

import datetime as dt
import html
from pathlib import Path

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from studio.output import LINE_KPIS, fmt
from twins.calendar import UNITS_PER_HOUR
from twins.energy import STATES
from twins.stats import Results

STATE_COLORS = {"busy": "#2ca02c", "setup": "#9467bd", "blocked": "#d62728", "starved": "#c7c7c7",
                "down": "#ff7f0e", "off": "#404040"}


def _time_axis(sc) -> tuple[float, str]:
    """(divisor, unit label) to show long horizons in hours rather than seconds or minutes."""
    per_hour = UNITS_PER_HOUR[sc.time_unit]
    if sc.time_unit != "h" and sc.horizon.length >= 4 * per_hour:
        return per_hour, "h"
    return 1.0, sc.time_unit


def state_breakdown(results: Results) -> go.Figure:
    """Stacked bars: share of all machine time per state, per station."""
    summary = results.summary()["stations"]
    names = list(summary)
    fig = go.Figure()
    for state in ("busy", "setup", "blocked", "starved", "down"):
        key = "utilization" if state == "busy" else state
        vals = [(summary[s][key]["mean"] or 0.0) * (1 - (summary[s]["off"]["mean"] or 0.0)) for s in names]
        fig.add_bar(y=names, x=vals, name=state, orientation="h", marker_color=STATE_COLORS[state])
    fig.add_bar(y=names, x=[summary[s]["off"]["mean"] or 0.0 for s in names], name="planned off", orientation="h",
                marker_color=STATE_COLORS["off"])
    fig.update_layout(barmode="stack", title="Where machine time goes (share of all time, mean of replications)",
                      xaxis=dict(title="share of time", tickformat=".0%", range=[0, 1]),
                      yaxis=dict(autorange="reversed"), legend_orientation="h", height=120 + 40 * len(names))
    return fig


def oee_chart(results: Results) -> go.Figure:
    summary = results.summary()["stations"]
    names = list(summary)
    fig = go.Figure()
    for key in ("availability", "performance", "quality", "oee"):
        fig.add_bar(x=names, y=[summary[s][key]["mean"] for s in names], name=key,
                    error_y=dict(type="data", array=[summary[s][key]["half_width"] or 0 for s in names]))
    fig.update_layout(barmode="group", title="OEE = availability × performance × quality (ISO 22400), 95 % CI",
                      yaxis=dict(tickformat=".0%"), legend_orientation="h")
    return fig


def over_time(results: Results) -> go.Figure:
    """WIP and queue lengths over time (first replication), warm-up shaded."""
    series = results.replications[0].series or []
    sc = results.scenario
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=("WIP in the line", "parts waiting per station buffer"))
    div, label = _time_axis(sc)
    if series:
        t = [s[0] / div for s in series]
        fig.add_scatter(x=t, y=[s[1] for s in series], name="WIP", line_shape="hv", row=1, col=1)
        for k, st in enumerate(sc.stations):
            fig.add_scatter(x=t, y=[s[4][k] for s in series], name=st.name, line_shape="hv", row=2, col=1)
    if sc.horizon.warmup:
        for row in (1, 2):
            fig.add_vrect(x0=0, x1=sc.horizon.warmup / div, fillcolor="gray", opacity=0.15, line_width=0,
                          row=row, col=1)
    fig.update_layout(title="Over time (replication 1; gray = warm-up, not in statistics)", height=520)
    fig.update_xaxes(title_text=f"time [{label}]", row=2, col=1)
    return fig


def energy_by_state(results: Results) -> go.Figure:
    means, hws = [], []
    for s in STATES:
        m, h = results.ci(f"energy_kwh_{s}")
        means.append(m)
        hws.append(0 if h != h else h)
    fig = go.Figure(go.Bar(x=list(STATES), y=means, error_y=dict(type="data", array=hws), marker_color="#1f77b4"))
    fig.update_layout(title="Energy by machine state (kWh per replication window, 95 % CI)", yaxis_title="kWh")
    return fig


def power_vs_tariff(results: Results) -> go.Figure:
    series = results.replications[0].series or []
    sc = results.scenario
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    div, label = _time_axis(sc)
    if series:
        t = [s[0] / div for s in series]
        fig.add_scatter(x=t, y=[s[2] for s in series], name="power drawn [kW]", line_shape="hv",
                        fill="tozeroy", secondary_y=False)
        cur = sc.tariff.currency if sc.tariff else ""
        fig.add_scatter(x=t, y=[s[3] for s in series], name=f"price [{cur}/kWh]", line_shape="hv",
                        line=dict(color="#d62728", width=2), secondary_y=True)
    fig.update_layout(title="Power drawn against the time-of-use tariff (replication 1)", legend_orientation="h")
    fig.update_xaxes(title_text=f"time [{label}]")
    fig.update_yaxes(title_text="kW", secondary_y=False)
    fig.update_yaxes(title_text="price per kWh", secondary_y=True)
    return fig


def figures(results: Results) -> list[go.Figure]:
    return [state_breakdown(results), oee_chart(results), over_time(results), energy_by_state(results),
            power_vs_tariff(results)]


def _kpi_table(summary: dict) -> str:
    rows = []
    for k in LINE_KPIS + tuple(f"energy_kwh_{s}" for s in STATES):
        e = summary["kpis"].get(k)
        if e is not None:
            rows.append(f"<tr><td>{k}</td><td class=num>{html.escape(fmt(e['mean'], e['half_width']))}</td>"
                        f"<td>{html.escape(e['unit'])}</td></tr>")
    return "<table><tr><th>line KPI</th><th>mean ± 95 % half width</th><th>unit</th></tr>" + "".join(rows) + "</table>"


def _station_table(summary: dict) -> str:
    keys = ("utilization", "setup", "blocked", "starved", "down", "off", "availability", "performance", "quality",
            "oee", "queue_length", "waiting_time", "throughput", "energy_kwh")
    head = "".join(f"<th>{k}</th>" for k in keys)
    rows = []
    for name, kp in summary["stations"].items():
        cells = "".join(f"<td class=num>{html.escape(fmt(kp[k]['mean'], kp[k]['half_width'], 3))}</td>" for k in keys)
        rows.append(f"<tr><td>{html.escape(name)}</td>{cells}</tr>")
    return f"<div style='overflow-x:auto'><table><tr><th>station</th>{head}</tr>{''.join(rows)}</table></div>"


def write_report(results: Results, path: str | Path, source: str = "") -> Path:
    """Write a self-contained HTML report (plotly.js embedded once: opens offline)."""
    summary = results.summary()
    sc = results.scenario
    parts = []
    for i, fig in enumerate(figures(results)):
        fig.update_layout(template="plotly_white", margin=dict(l=60, r=30, t=60, b=40))
        parts.append(fig.to_html(full_html=False, include_plotlyjs=(i == 0)))
    when = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    run = (f"{summary['replications']} replications, seed {summary['seed']}, "
           f"horizon {sc.horizon.length:g} {sc.time_unit}")
    busy_note = ("Fractions of planned busy time (ISO 22400: machine time minus planned off time); "
                 "off = share of all time.")
    doc = f"""<!doctype html><html><head><meta charset="utf-8"><title>twinopt — {html.escape(sc.name)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:24px;max-width:1200px;color:#222}}
table{{border-collapse:collapse;margin:8px 0 24px;font-size:13px}}td,th{{border-bottom:1px solid #ddd;padding:4px 8px}}
th{{text-align:left;background:#f5f5f5}}td.num{{text-align:right;font-variant-numeric:tabular-nums}}
.meta{{color:#666}}</style></head><body>
<h1>{html.escape(sc.name)}</h1><p>{html.escape(sc.description)}</p>
<p class=meta>{run}
(warm-up {sc.horizon.warmup:g} deleted), 95 % Student-t confidence intervals. Source: {html.escape(str(source))}.
Generated {when} by twinopt.</p>
<h2>Line KPIs</h2>{_kpi_table(summary)}<h2>Stations</h2>
<p class=meta>{busy_note}</p>
{_station_table(summary)}
{''.join(f'<div>{p}</div>' for p in parts)}
</body></html>"""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(doc)
    tmp.replace(path)
    return path
