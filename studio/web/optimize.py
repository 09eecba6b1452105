"""The Optimize page: launch a setpoint search (``optimize``), a schedule (``schedule``) or an energy
plan (``energy``) as an API job, follow its progress, and read the Recommendation it makes — its
replay in the twin and the envelope's verdict (:mod:`studio.web.recommendation`) — with the search
history and parameter importance of a setpoint search (the job's figures)."""
from __future__ import annotations

from typing import Any

from dash import Input, Output, State, callback, dcc, html, no_update

from studio.api.client import ApiError, Job
from studio.api.roles import may
from studio.web import recommendation
from studio.web.common import BUTTON, CARD, ERROR, KPIS, NOTE, api_error, client, progress_bar

#: job kind -> what the page calls it
KINDS = {"optimize": "Setpoint search", "schedule": "Schedule", "energy": "Energy plan"}
SOLVERS = ("cpsat", "milp", "neh", "ig")
HIDDEN = {"display": "none"}
ROW = {"margin": "4px 0"}


def _number(id: str, label: str, value: float, lo: float, hi: float | None, step: float | str = 1) -> html.Span:
    return html.Span([
        html.Label(f" {label} ", style={"marginLeft": "10px", "fontSize": "13px"}),
        dcc.Input(id=id, type="number", value=value, min=lo, max=hi, step=step, style={"width": "80px"}),
    ])


def layout() -> html.Div:
    return html.Div([
        html.Div([
            html.Div([
                html.Label("Job ", style={"fontWeight": "600"}),
                dcc.RadioItems(id="op-kind", options=[{"label": v, "value": k} for k, v in KINDS.items()],
                               value="optimize", inline=True, style={"display": "inline-block"},
                               inputStyle={"marginLeft": "12px"}),
            ], style=ROW),
            html.Div([
                html.Label("Scenario ", id="op-scenario-label", style={"fontWeight": "600"}),
                dcc.Dropdown(id="op-scenario", placeholder="pick a scenario",
                             style={"width": "320px", "display": "inline-block", "verticalAlign": "middle"}),
                _number("op-seed", "seed", 0, 0, None),
            ], style=ROW),
            html.Div([
                html.Label("objective ", style={"fontSize": "13px"}),
                dcc.Dropdown(id="op-objective", options=list(KPIS), value="margin", clearable=False,
                             style={"width": "200px", "display": "inline-block", "verticalAlign": "middle"}),
                dcc.Checklist(id="op-minimize", options=[{"label": " minimize", "value": "min"}], value=[],
                              style={"display": "inline-block", "marginLeft": "8px"}),
                html.Label(" sampler ", style={"marginLeft": "10px", "fontSize": "13px"}),
                dcc.Dropdown(id="op-sampler", options=["tpe", "cmaes", "gp", "random", "screen", "model"], value="tpe",
                             clearable=False,
                             style={"width": "110px", "display": "inline-block", "verticalAlign": "middle"}),
                _number("op-budget", "trials", 40, 1, 500),
                _number("op-reps", "replications per trial", 3, 1, 100),
                _number("op-topk", "top k", 3, 1, 50),
                _number("op-final", "final replications", 6, 2, 100),
            ], id="op-optimize-options", style=ROW),
            html.Div([
                html.Label("solver ", style={"fontSize": "13px"}),
                dcc.Dropdown(id="op-solver", options=list(SOLVERS), value="cpsat", clearable=False,
                             style={"width": "120px", "display": "inline-block", "verticalAlign": "middle"}),
                _number("op-cv", "operation-time CV", 0.1, 0, 2, "any"),
            ], id="op-schedule-options", style=HIDDEN),
            html.Div([
                html.Label("station ", style={"fontSize": "13px"}),
                dcc.Input(id="op-station", type="text", placeholder="the planner's choice", style={"width": "150px"}),
                html.Label(" output target ", style={"marginLeft": "10px", "fontSize": "13px"}),
                dcc.Input(id="op-target", type="number", min=0, step="any", placeholder="units over the horizon",
                          style={"width": "170px"}),
                html.Span(" (needed where releases come only on command)", style=NOTE),
            ], id="op-energy-options", style=HIDDEN),
            html.Div([
                _number("op-time-limit", "solver time limit [s]", 20, 1, 600),
                _number("op-replay-reps", "replay replications", 5, 2, 100),
            ], id="op-solver-options", style=HIDDEN),
        ], style=CARD),
        html.Div([
            html.Div(id="op-launch-box", style={"display": "inline-block"}),
            html.Span(id="op-status", style=NOTE),
            html.Div(id="op-progress", style={"marginTop": "8px"}),
        ], style=CARD),
        html.Div(id="op-result"),
        html.Div(id="op-figures"),
        html.Div([
            html.Label("Reopen a past optimization: ", style={"fontWeight": "600"}),
            dcc.Dropdown(id="op-past", placeholder="a finished optimize, schedule or energy job",
                         style={"width": "620px", "display": "inline-block", "verticalAlign": "middle"}),
        ], style=CARD),
        dcc.Store(id="op-job"),
        dcc.Interval(id="op-poll", interval=1000, disabled=True),
    ])


# ------------------------------------------------------------------------------------ callbacks

@callback(Output("op-launch-box", "children"), Input("role", "data"))
def _launch_box(role: str | None) -> Any:
    """Only a role that may submit jobs sees the button (the API refuses the others anyway)."""
    if may(role, "write"):
        return html.Button("Launch", id="op-launch", style={**BUTTON, "fontWeight": "600"})
    if role is None:
        return html.Span("sign in to optimize", style={**NOTE, "marginRight": "10px"})
    return html.Span(f"a {role} key can read recommendations; launching jobs needs an engineer's",
                     style={**NOTE, "marginRight": "10px"})


@callback(Output("op-optimize-options", "style"), Output("op-schedule-options", "style"),
          Output("op-energy-options", "style"), Output("op-solver-options", "style"),
          Output("op-scenario-label", "children"), Input("op-kind", "value"))
def _sections(kind: str) -> tuple[Any, Any, Any, Any, str]:
    return (ROW if kind == "optimize" else HIDDEN, ROW if kind == "schedule" else HIDDEN,
            ROW if kind == "energy" else HIDDEN, HIDDEN if kind == "optimize" else ROW,
            "Instance " if kind == "schedule" else "Scenario ")


@callback(Output("op-scenario", "options"), Output("op-scenario", "value"), Output("op-past", "options"),
          Input("key", "data"), Input("tabs", "value"), Input("op-kind", "value"), State("op-scenario", "value"))
def _choices(key: str | None, _tab: str, kind: str, current: str | None) -> tuple[Any, Any, Any]:
    """The scenarios (or instances) a job of ``kind`` can take, the one to keep, the past jobs."""
    if not key:
        return [], None, []
    try:
        with client(key) as api:
            past = [j for j in api.jobs(status="succeeded", limit=100) if j.kind in KINDS and j.recommendation_id]
            scs = [] if kind == "schedule" else api.scenarios()
    except ApiError:
        return [], None, []
    if kind == "schedule":
        from twins.jobshop.instances import shipped_instances

        options = [{"label": name, "value": name} for name in shipped_instances()]
    else:
        options = [{"label": s["name"] + (" (shipped)" if s["shipped"] else f" v{s['version']}"), "value": s["id"]}
                   for s in scs]
    value = current if current in {o["value"] for o in options} else None
    runs = [{"label": f"{KINDS[j.kind]} · {j.scenario} · {(j.finished_at or '')[:19]} · "
                      f"{', '.join(f'{k}={v}' for k, v in j.params.items())}", "value": j.id} for j in past]
    return options, value, runs


def params(kind: str, values: dict[str, Any]) -> dict[str, Any]:
    """The job's ``params`` from the page's controls (what the command line would be given)."""
    seed = {"seed": int(values["seed"])}
    if kind == "optimize":
        out = {"budget": int(values["budget"]), "replications": int(values["reps"]), "top_k": int(values["topk"]),
               "final_replications": int(values["final"]), "objective": values["objective"],
               "sampler": values["sampler"], **seed}
        if values["minimize"]:
            out["minimize"] = True
        return out
    out = {"time_limit": float(values["time_limit"]), "replications": int(values["replay_reps"]), **seed}
    if kind == "schedule":
        out.update(solver=values["solver"], cv=float(values["cv"] or 0))
    if kind == "energy":
        if (values["station"] or "").strip():
            out["station"] = values["station"].strip()
        if values["target"] is not None:
            out["target"] = float(values["target"])
    return out


@callback(Output("op-job", "data"), Output("op-poll", "disabled", allow_duplicate=True),
          Output("op-status", "children", allow_duplicate=True), Output("op-result", "children", allow_duplicate=True),
          Output("op-figures", "children", allow_duplicate=True),
          Input("op-launch", "n_clicks"), State("op-kind", "value"), State("op-scenario", "value"),
          State("op-seed", "value"), State("op-objective", "value"), State("op-minimize", "value"),
          State("op-sampler", "value"), State("op-budget", "value"), State("op-reps", "value"),
          State("op-topk", "value"), State("op-final", "value"), State("op-solver", "value"),
          State("op-cv", "value"), State("op-station", "value"), State("op-target", "value"),
          State("op-time-limit", "value"), State("op-replay-reps", "value"), State("key", "data"),
          prevent_initial_call=True)
def _launch(n: int | None, kind: str, scenario: str | None, seed: Any, objective: str, minimize: list[str],
            sampler: str, budget: Any, reps: Any, topk: Any, final: Any, solver: str, cv: Any, station: str | None,
            target: Any, time_limit: Any, replay_reps: Any, key: str | None) -> tuple[Any, ...]:
    if not n:
        return (no_update,) * 5
    if not scenario:
        return no_update, True, html.Span("pick a scenario first", style=ERROR), no_update, no_update
    values = {"seed": seed, "objective": objective, "minimize": bool(minimize), "sampler": sampler,
              "budget": budget, "reps": reps, "topk": topk, "final": final, "solver": solver, "cv": cv,
              "station": station, "target": target, "time_limit": time_limit, "replay_reps": replay_reps}
    needed = {"seed"} | ({"budget", "reps", "topk", "final"} if kind == "optimize" else {"time_limit", "replay_reps"})
    missing = sorted(k for k in needed if values[k] is None)
    if missing:
        return no_update, True, html.Span(f"a number within the bounds is needed: {', '.join(missing)}",
                                          style=ERROR), no_update, no_update
    try:
        with client(key) as api:
            job = api.submit(kind, scenario, params(kind, values))
    except ApiError as err:
        return no_update, True, html.Span(api_error(err), style=ERROR), no_update, no_update
    note = " (the same inputs ran before: its result)" if job.cached else ""
    return {"id": job.id, "kind": kind}, False, f"{KINDS[kind]} job {job.id[:8]} submitted{note}", [], []


@callback(Output("op-progress", "children"), Output("op-result", "children"), Output("op-figures", "children"),
          Output("op-poll", "disabled"), Output("op-status", "children"),
          Input("op-poll", "n_intervals"), State("op-job", "data"), State("key", "data"), prevent_initial_call=True)
def _poll(_n: int, job: dict[str, Any] | None, key: str | None) -> tuple[Any, ...]:
    if not job:
        return no_update, no_update, no_update, True, no_update
    try:
        with client(key) as api:
            state = api.job(job["id"])
            bar = [progress_bar(1.0 if state.done else state.progress, "progress", id="op-bar"),
                   html.Span(f"{state.status} · {state.progress:.0%}", style=NOTE)]
            if not state.done:
                return bar, no_update, no_update, False, no_update
            result, figures = outcome(api, state)
    except ApiError as err:
        return no_update, html.Div(api_error(err), style=ERROR), no_update, True, "failed"
    return bar, result, figures, True, state.status


def outcome(api: Any, job: Job) -> tuple[Any, Any]:
    """The recommendation card and, for a setpoint search, its history and importance charts."""
    if job.status != "succeeded":
        return html.Div(f"{job.kind} job {job.id[:8]} {job.status}: {job.error}", style=ERROR), []
    if not job.recommendation_id:
        return html.Div(f"{job.kind} job {job.id[:8]} made no recommendation", style=ERROR), []
    card = recommendation.view(api.recommendation(job.recommendation_id))
    if job.kind != "optimize":
        return card, []
    try:
        figs = api.figures(job.id)
    except ApiError:
        figs = []
    return card, html.Div([
        html.H3("The search"),
        html.Div("Every trial's objective (the mean of its replications), the best so far, the recommended trial; "
                 "which parameters set the best trials apart.", style=NOTE),
        *[dcc.Graph(figure=f, className="op-figure") for f in figs],
    ], style=CARD)


@callback(Output("op-result", "children", allow_duplicate=True), Output("op-figures", "children", allow_duplicate=True),
          Input("op-past", "value"), State("key", "data"), prevent_initial_call=True)
def _reopen(job_id: str | None, key: str | None) -> tuple[Any, Any]:
    if not job_id:
        return no_update, no_update
    try:
        with client(key) as api:
            return outcome(api, api.job(job_id))
    except ApiError as err:
        return html.Div(api_error(err), style=ERROR), []
