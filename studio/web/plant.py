"""The plant page: connect to an OPC UA endpoint (a PLC, or the virtual plant ``twinopt plant``)
through the API, watch its setpoints, machine states, buffers and counters, and start a what-if
from the plant as it is now (its snapshot)."""
from __future__ import annotations

from typing import Any

from dash import Input, Output, State, callback, dcc, html, no_update

from studio.api.client import ApiError
from studio.web.common import BUTTON, CARD, ERROR, NOTE, api_error, client, fmt, progress_bar, table

STATE_COLOURS = {"busy": "#2ca02c", "idle": "#c7c7c7", "setup": "#9467bd", "blocked": "#d62728", "down": "#ff7f0e",
                 "standby": "#17becf", "off": "#444444", "starved": "#c7c7c7"}


def layout() -> html.Div:
    return html.Div([
        html.Div([
            html.Label("OPC UA endpoint ", style={"fontWeight": "600"}),
            dcc.Input(id="pl-endpoint", type="text", value="opc.tcp://127.0.0.1:4840/twinopt/",
                      style={"width": "360px"}),
            html.Button("Connect", id="pl-connect", style={**BUTTON, "marginLeft": "8px"}),
            html.Button("Disconnect", id="pl-disconnect", style=BUTTON),
            html.Span(id="pl-status", style=NOTE),
        ], style=CARD),
        html.Div(id="pl-live"),
        html.Div([
            html.Span("What-if from now: ", style={"fontWeight": "600"}),
            html.Span("a twin run that starts from the plant's current state (no warm-up) ", style=NOTE),
            html.Label(" replications "),
            dcc.Input(id="pl-reps", type="number", value=10, min=2, max=100, step=1, style={"width": "70px"}),
            html.Label(" horizon "),
            dcc.Input(id="pl-horizon", type="number", value=None, min=1, placeholder="scenario's",
                      style={"width": "110px"}),
            html.Button("What-if from now", id="pl-whatif", className="needs-write",
                        style={**BUTTON, "marginLeft": "10px", "fontWeight": "600"}),
            html.Span(id="pl-whatif-status", style=NOTE),
            html.Div(id="pl-whatif-progress", style={"marginTop": "8px"}),
            html.Div(id="pl-whatif-results"),
        ], style=CARD),
        dcc.Store(id="pl-connected"),
        dcc.Store(id="pl-job"),
        dcc.Interval(id="pl-tick", interval=2000, disabled=True),
        dcc.Interval(id="pl-poll", interval=800, disabled=True),
    ])


@callback(Output("pl-connected", "data"), Output("pl-tick", "disabled"), Output("pl-status", "children"),
          Input("pl-connect", "n_clicks"), Input("pl-disconnect", "n_clicks"), State("pl-endpoint", "value"),
          prevent_initial_call=True)
def _connect(_c: int | None, _d: int | None, endpoint: str | None) -> tuple[Any, bool, str]:
    from dash import ctx

    if ctx.triggered_id == "pl-disconnect" or not endpoint:
        return None, True, "not connected"
    return endpoint.strip(), False, f" watching {endpoint.strip()} every 2 s"


@callback(Output("pl-live", "children"), Input("pl-tick", "n_intervals"), Input("pl-connected", "data"),
          State("key", "data"), prevent_initial_call=True)
def _live(_n: int | None, endpoint: str | None, key: str | None) -> Any:
    if not endpoint:
        return ""
    try:
        with client(key) as api:
            live = api.request("GET", "/plant", params={"endpoint": endpoint})
    except ApiError as err:
        return html.Div(api_error(err), style={**ERROR, **CARD})
    return view(live)


def view(live: dict[str, Any]) -> html.Div:
    c = live["counters"]
    head = html.Div([
        html.Span(f"{live['scenario']}", style={"fontWeight": "700", "fontSize": "16px", "marginRight": "16px"}),
        html.Span(f"clock {live['time_of_day'] or '–'} · simulated time {live['sim_time']:.0f} · "
                  f"WIP {live['wip']} · good {c.get('good')} · scrap {c.get('scrap')} · "
                  f"throughput {fmt(c.get('throughput_per_h'))} /h · energy {fmt(c.get('energy_kwh'))} kWh"
                  + ("" if c.get("running") else " · stopped"), id="pl-counters"),
    ])
    setpoints = [[f"{st}.{p}", fmt(v, digits=6)] for st, values in live["setpoints"].items()
                 for p, v in values.items()]
    stations = []
    for name, s in live["stations"].items():
        badges = [html.Span(m, title=m, style={"display": "inline-block", "padding": "1px 6px", "margin": "1px",
                                              "borderRadius": "3px", "fontSize": "11px", "color": "white",
                                              "background": STATE_COLOURS.get(m, "#888")})
                  for m in s["machines"]]
        stations.append([name, str(s["buffer"]), html.Span(badges)])
    return html.Div([
        head,
        html.Div([
            html.Div([html.H4("Machines and buffers"),
                      table(["station", "waiting", "machines"], stations, id="pl-machines")],
                     style={"display": "inline-block", "verticalAlign": "top", "marginRight": "40px"}),
            html.Div([html.H4("Setpoints in force"), table(["tag", "value"], setpoints, id="pl-setpoints")]
                     if setpoints else html.Div(),
                     style={"display": "inline-block", "verticalAlign": "top"}),
        ]),
    ], style=CARD)


@callback(Output("pl-job", "data"), Output("pl-poll", "disabled", allow_duplicate=True),
          Output("pl-whatif-status", "children"), Input("pl-whatif", "n_clicks"),
          State("pl-connected", "data"), State("pl-endpoint", "value"), State("pl-reps", "value"),
          State("pl-horizon", "value"), State("key", "data"), prevent_initial_call=True)
def _whatif(_n: int | None, connected: str | None, endpoint: str | None, reps: Any, horizon: Any,
            key: str | None) -> tuple[Any, Any, str]:
    endpoint = connected or (endpoint or "").strip()
    if not endpoint:
        return no_update, True, "enter the plant's endpoint"
    try:
        with client(key) as api:
            snap = api.request("POST", "/plant/snapshot", json={"endpoint": endpoint})
            params: dict[str, Any] = {"replications": int(reps or 10), "from_state": snap["id"]}
            if horizon:
                params["set"] = [f"horizon.length={float(horizon):g}"]
            job = api.submit("run", snap["scenario"], params)
    except ApiError as err:
        return no_update, True, api_error(err)
    return {"job": job.id, "state": snap}, False, (
        f" snapshot at {snap['time_of_day'] or '?'} with {snap['wip']} parts in the line; job {job.id[:8]} submitted")


@callback(Output("pl-whatif-progress", "children"), Output("pl-whatif-results", "children"),
          Output("pl-poll", "disabled"), Input("pl-poll", "n_intervals"), State("pl-job", "data"),
          State("key", "data"), prevent_initial_call=True)
def _poll(_n: int, job: dict[str, Any] | None, key: str | None) -> tuple[Any, Any, bool]:
    from studio.web.whatif import results

    if not job:
        return no_update, no_update, True
    try:
        with client(key) as api:
            j = api.job(job["job"])
            bar = [progress_bar(1.0 if j.done else j.progress, "progress"),
                   html.Span(f"{j.status} · {j.progress:.0%}", style=NOTE)]
            if not j.done:
                return bar, no_update, False
            if j.status != "succeeded":
                return bar, html.Div(f"{j.status}: {j.error}", style=ERROR), True
            figures = api.figures(j.id)
    except ApiError as err:
        return no_update, html.Div(api_error(err), style=ERROR), True
    batch = {"names": ["Baseline"], "runs": {"Baseline": j.id}, "compares": {}}
    return bar, html.Div([html.Div(f"from the plant's state at {job['state']['time_of_day'] or '?'}", style=NOTE),
                          results(batch, {j.id: j}, {"Baseline": figures})], id="pl-whatif-done"), True
