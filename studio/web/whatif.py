"""The what-if page: pick a scenario, edit up to four variants against the baseline with controls
bounded by the spec, run them as API jobs (a run job per variant for its KPIs and charts, a
compare job per variant for the paired difference under common random numbers), and read the KPI
table with 95 % CIs, the differences with their significance, and the charts."""
from __future__ import annotations

import re
from typing import Any

import plotly.graph_objects as go
from dash import ALL, Input, Output, State, callback, ctx, dcc, html, no_update

from studio.api.client import ApiError
from studio.api.roles import may
from studio.web.common import (
    BUTTON,
    CARD,
    ERROR,
    KPIS,
    LOWER_IS_BETTER,
    NOTE,
    api_error,
    client,
    fmt,
    progress_bar,
    signed,
    table,
)

MAX_VARIANTS = 4
TIME = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


# ------------------------------------------------------------------------------------ the editor

def load(key: str | None, scenario_id: str) -> Any:
    """The scenario behind ``scenario_id`` as the API has it (shipped: the same file here)."""
    from twins.loader import load_scenario, scenario_from_text

    with client(key) as api:
        doc = api.scenario(scenario_id)
    if doc.get("shipped"):
        return load_scenario(doc["name"])
    return scenario_from_text(doc["yaml"], f"{doc['name']}.yaml", allow_files=False)


def editables(sc: Any) -> list[dict[str, Any]]:
    """Every value the editor offers: path (a `--set` path), label, kind, value, bounds, unit."""
    from twins.spec import MAX_MACHINES

    out: list[dict[str, Any]] = []
    for st in sc.stations:
        out.append({"path": f"stations.{st.name}.machines", "group": "Stations", "label": f"{st.name}: machines",
                    "kind": "int", "value": st.machines, "min": 1, "max": MAX_MACHINES, "unit": ""})
        out.append({"path": f"stations.{st.name}.buffer", "group": "Stations", "label": f"{st.name}: buffer",
                    "kind": "buffer", "value": st.buffer, "min": 0, "max": None, "unit": "places (empty: unlimited)"})
    for st in sc.stations:
        for p in st.parameters:
            out.append({"path": f"{st.name}.{p.name}", "group": "Process parameters", "label": f"{st.name}.{p.name}",
                        "kind": "float", "value": p.value if p.value is not None else p.default, "min": p.min,
                        "max": p.max, "unit": p.unit})
    if sc.calendar is not None:
        for sh in sc.calendar.shifts:
            for end in ("start", "end"):
                out.append({"path": f"calendar.shifts.{sh.name}.{end}", "group": "Shift calendar",
                            "label": f"shift {sh.name}: {end}", "kind": "time", "value": getattr(sh, end),
                            "min": None, "max": None, "unit": "HH:MM"})
    if sc.tariff is not None:
        out.append({"path": "tariff.default_price", "group": "Tariff", "label": "default price", "kind": "float",
                    "value": sc.tariff.default_price, "min": 0, "max": None, "unit": f"{sc.tariff.currency}/kWh"})
        for per in sc.tariff.periods:
            out.append({"path": f"tariff.periods.{per.name}.price", "group": "Tariff", "label": f"{per.name}: price",
                        "kind": "float", "value": per.price, "min": 0, "max": None,
                        "unit": f"{sc.tariff.currency}/kWh"})
            for end in ("start", "end"):
                out.append({"path": f"tariff.periods.{per.name}.{end}", "group": "Tariff",
                            "label": f"{per.name}: {end}", "kind": "time", "value": getattr(per, end),
                            "min": None, "max": None, "unit": "HH:MM"})
    return out


def refuse(item: dict[str, Any], value: Any) -> str | None:
    """Why ``value`` cannot be entered for ``item`` (None: it can)."""
    kind, lo, hi = item["kind"], item["min"], item["max"]
    if kind == "time":
        return None if isinstance(value, str) and TIME.match(value) else "a time of day, HH:MM"
    if kind == "buffer" and value in (None, ""):
        return None
    if value is None or value == "":
        bounds = f" within [{lo:g}, {hi:g}] {item['unit']}".rstrip() if lo is not None and hi is not None else ""
        return f"{item['label']} needs a number{bounds}"
    if kind in ("int", "buffer") and float(value) != int(float(value)):
        return "a whole number"
    if lo is not None and hi is not None and not lo <= float(value) <= hi:
        return f"{item['label']} must be within [{lo:g}, {hi:g}] {item['unit']}".rstrip()
    if lo is not None and float(value) < lo:
        return f"{item['label']} must be ≥ {lo:g}"
    return None


def _control(item: dict[str, Any], value: Any) -> html.Div:
    ident = {"type": "edit", "path": item["path"]}
    if item["kind"] == "time":
        box = dcc.Input(id=ident, type="text", value=value, debounce=True, style={"width": "80px"})
    else:
        step = 1 if item["kind"] in ("int", "buffer") else "any"
        # no min/max on the input: the browser would hand over an out-of-range value as "empty";
        # refuse() checks the bounds and says why
        box = dcc.Input(id=ident, type="number", value=value, debounce=True, step=step, style={"width": "110px"})
    bounds = f"[{item['min']:g}, {item['max']:g}]" if item["min"] is not None and item["max"] is not None else ""
    return html.Div([
        html.Label(item["label"], style={"display": "inline-block", "width": "260px", "fontSize": "13px"}),
        box,
        html.Span(f" {item['unit']} {bounds}", style={**NOTE, "marginLeft": "6px"}),
        html.Span(id={"type": "edit-msg", "path": item["path"]}, style={**ERROR, "marginLeft": "10px"}),
    ], style={"margin": "3px 0"})


def editor(items: list[dict[str, Any]], overrides: dict[str, Any]) -> list[Any]:
    groups: dict[str, list[Any]] = {}
    for item in items:
        value = overrides.get(item["path"], item["value"])
        groups.setdefault(item["group"], []).append(_control(item, value))
    return [html.Details([html.Summary(name, style={"fontWeight": "600", "cursor": "pointer"}), *controls],
                         open=name in ("Stations", "Process parameters"), style={"margin": "6px 0"})
            for name, controls in groups.items()]


def _value(item: dict[str, Any], raw: Any) -> Any:
    if item["kind"] == "time":
        return raw
    if item["kind"] == "buffer" and raw in (None, ""):
        return None
    return int(float(raw)) if item["kind"] in ("int", "buffer") else float(raw)


def set_args(overrides: dict[str, Any]) -> list[str]:
    """The `--set` options of a variant (a buffer set to unlimited is `null`)."""
    out = []
    for path, value in sorted(overrides.items()):
        out.append(f"{path}={'null' if value is None else value}")
    return out


# ------------------------------------------------------------------------------------ layout

def layout() -> html.Div:
    return html.Div([
        html.Div([
            html.Label("Scenario ", style={"fontWeight": "600"}),
            dcc.Dropdown(id="wi-scenario", placeholder="pick a scenario", style={"width": "320px",
                                                                                 "display": "inline-block"}),
            dcc.Upload(id="wi-upload", children=html.Button("Upload YAML…", style=BUTTON), accept=".yaml,.yml",
                       className="needs-write", style={"display": "inline-block", "marginLeft": "12px"}),
            html.Label(" replications ", style={"marginLeft": "16px"}),
            dcc.Input(id="wi-reps", type="number", value=10, min=2, max=100, step=1, style={"width": "70px"}),
            html.Label(" seed ", style={"marginLeft": "10px"}),
            dcc.Input(id="wi-seed", type="number", value=0, min=0, step=1, style={"width": "70px"}),
            html.Div(id="wi-upload-msg", style={"marginTop": "6px"}),
        ], style=CARD),
        html.Div([
            html.Div([
                html.Label("Variant: ", style={"fontWeight": "600"}),
                dcc.RadioItems(id="wi-current", options=["Baseline"], value="Baseline", inline=True,
                               style={"display": "inline-block"}, inputStyle={"marginLeft": "10px"}),
                html.Button("+ Add variant", id="wi-add", style={**BUTTON, "marginLeft": "16px"}),
                html.Button("Remove variant", id="wi-remove", style=BUTTON),
            ]),
            html.Div(id="wi-changes", style={**NOTE, "margin": "6px 0"}),
            html.Div(id="wi-editor"),
        ], style=CARD),
        html.Div([
            html.Div(id="wi-run-box", style={"display": "inline-block"}),
            html.Span(id="wi-status", style=NOTE),
            html.Div(id="wi-progress", style={"marginTop": "8px"}),
        ], style=CARD),
        html.Div(id="wi-results"),
        html.Div([
            html.Label("Reopen a past run: ", style={"fontWeight": "600"}),
            dcc.Dropdown(id="wi-past", placeholder="a finished run job", style={"width": "560px",
                                                                                 "display": "inline-block"}),
        ], style=CARD),
        dcc.Store(id="wi-items"),
        dcc.Store(id="wi-variants", data={"names": ["Baseline"], "overrides": {"Baseline": {}}}),
        dcc.Store(id="wi-batch"),
        dcc.Interval(id="wi-poll", interval=700, disabled=True),
    ])


# ------------------------------------------------------------------------------------ callbacks

@callback(Output("wi-run-box", "children"), Input("role", "data"))
def _run_box(role: str | None) -> Any:
    """Only a role that may submit jobs sees the Run button (the API refuses the others anyway)."""
    if may(role, "write"):
        return html.Button("Run what-if", id="wi-run", style={**BUTTON, "fontWeight": "600"})
    who = f"a {role} key" if role else "nobody signed in"
    return html.Span(f"{who}: past runs can be reopened below; running needs an engineer's key",
                     style={**NOTE, "marginRight": "10px"})


@callback(Output("wi-scenario", "options"), Output("wi-past", "options"), Input("key", "data"),
          Input("tabs", "value"))
def _scenarios(key: str | None, _tab: str) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    if not key:
        return [], []
    try:
        with client(key) as api:
            scs = api.scenarios()
            past = api.jobs(status="succeeded", limit=50)
    except ApiError:
        return [], []
    options = [{"label": f"{s['name']}" + (" (shipped)" if s["shipped"] else f" v{s['version']}"), "value": s["id"]}
               for s in scs]
    runs = [{"label": f"{j.scenario} · {j.kind} · {j.finished_at[:19] if j.finished_at else ''} · "
                      f"{', '.join(f'{k}={v}' for k, v in j.params.items())}", "value": j.id}
            for j in past if j.kind == "run"]
    return options, runs


@callback(Output("wi-upload-msg", "children"), Output("wi-scenario", "options", allow_duplicate=True),
          Output("wi-scenario", "value"), Input("wi-upload", "contents"), State("wi-upload", "filename"),
          State("key", "data"), prevent_initial_call=True)
def _upload(contents: str | None, filename: str | None, key: str | None) -> tuple[Any, Any, Any]:
    """A scenario file from the engineer's disk: stored by the API (validated there: errors name the
    field and the line), then picked."""
    import base64

    if not contents:
        return no_update, no_update, no_update
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", (filename or "scenario").rsplit(".", 1)[0]).lstrip("._-") or "scenario"
    try:
        text = base64.b64decode(contents.split(",", 1)[1]).decode("utf-8")
        with client(key) as api:
            doc = api.upload_scenario(text, name=name)
            options = _scenarios(key, "whatif")[0]
    except ApiError as err:
        return html.Div(f"{filename}: {api_error(err)}", style=ERROR, id="wi-upload-error"), no_update, no_update
    except (ValueError, UnicodeDecodeError):
        return html.Div(f"{filename}: not a UTF-8 text file", style=ERROR, id="wi-upload-error"), no_update, no_update
    return (html.Div(f"stored {doc['name']} v{doc['version']}", style=NOTE), options, doc["id"])


@callback(Output("wi-items", "data"), Output("wi-variants", "data", allow_duplicate=True),
          Output("wi-current", "value", allow_duplicate=True), Output("wi-status", "children", allow_duplicate=True),
          Input("wi-scenario", "value"), State("key", "data"), prevent_initial_call=True)
def _pick(scenario_id: str | None, key: str | None) -> tuple[Any, ...]:
    if not scenario_id:
        return None, no_update, no_update, ""
    try:
        items = editables(load(key, scenario_id))
    except ApiError as err:
        return None, no_update, no_update, api_error(err)
    except Exception as err:  # noqa: BLE001 - a scenario the studio cannot read: say so, keep going
        return None, no_update, no_update, f"cannot read the scenario: {err}"
    return items, {"names": ["Baseline"], "overrides": {"Baseline": {}}}, "Baseline", ""


@callback(Output("wi-editor", "children"), Input("wi-items", "data"), Input("wi-current", "value"),
          State("wi-variants", "data"))
def _editor(items: list[dict[str, Any]] | None, current: str, variants: dict[str, Any]) -> Any:
    """The controls of the current variant (redrawn only when the scenario or the variant changes,
    so typing keeps its focus)."""
    if not items:
        return html.Div("Pick a scenario to edit it.", style=NOTE)
    # the class says whose controls are shown (a test waits for it before typing into them)
    return html.Div(editor(items, variants["overrides"].get(current, {})),
                    className="editor-of-" + current.replace(" ", "-"))


@callback(Output("wi-current", "options"), Input("wi-variants", "data"))
def _variant_names(variants: dict[str, Any]) -> list[str]:
    return list(variants["names"])


@callback(Output("wi-variants", "data", allow_duplicate=True),
          Output({"type": "edit-msg", "path": ALL}, "children"),
          Input({"type": "edit", "path": ALL}, "value"),
          State({"type": "edit", "path": ALL}, "id"), State("wi-items", "data"), State("wi-current", "value"),
          State("wi-variants", "data"), prevent_initial_call=True)
def _edit(values: list[Any], ids: list[dict[str, str]], items: list[dict[str, Any]] | None, current: str,
          variants: dict[str, Any]) -> tuple[Any, list[str]]:
    if not items:
        return no_update, ["" for _ in ids]
    by_path = {i["path"]: i for i in items}
    overrides = dict(variants["overrides"].get(current, {}))
    messages = []
    for value, ident in zip(values, ids, strict=True):
        item = by_path[ident["path"]]
        why = refuse(item, value)
        messages.append(why or "")
        if why is not None:
            continue
        v = _value(item, value)
        if v == item["value"]:
            overrides.pop(item["path"], None)
        else:
            overrides[item["path"]] = v
    if overrides == variants["overrides"].get(current, {}):
        return no_update, messages
    variants = {**variants, "overrides": {**variants["overrides"], current: overrides}}
    return variants, messages


@callback(Output("wi-changes", "children"), Input("wi-variants", "data"), Input("wi-current", "value"))
def _changes(variants: dict[str, Any], current: str) -> str:
    changes = set_args(variants["overrides"].get(current, {}))
    return f"{current}: " + (", ".join(changes) if changes else "as the scenario is")


@callback(Output("wi-variants", "data", allow_duplicate=True), Output("wi-current", "value", allow_duplicate=True),
          Input("wi-add", "n_clicks"), Input("wi-remove", "n_clicks"), State("wi-variants", "data"),
          State("wi-current", "value"), prevent_initial_call=True)
def _add_remove(_add: int | None, _remove: int | None, variants: dict[str, Any], current: str) -> tuple[Any, Any]:
    names = list(variants["names"])
    overrides = dict(variants["overrides"])
    if ctx.triggered_id == "wi-add":
        if len(names) > MAX_VARIANTS:
            return no_update, no_update
        k = next(i for i in range(1, MAX_VARIANTS + 1) if f"Variant {i}" not in names)
        name = f"Variant {k}"
        names.append(name)
        overrides[name] = dict(overrides.get("Baseline", {}))
        return {"names": names, "overrides": overrides}, name
    if current == "Baseline":
        return no_update, no_update
    names.remove(current)
    overrides.pop(current, None)
    return {"names": names, "overrides": overrides}, "Baseline"


@callback(Output("wi-batch", "data"), Output("wi-poll", "disabled", allow_duplicate=True),
          Output("wi-status", "children", allow_duplicate=True),
          Input("wi-run", "n_clicks"), State("wi-scenario", "value"), State("wi-variants", "data"),
          State("wi-reps", "value"), State("wi-seed", "value"), State("key", "data"), prevent_initial_call=True)
def _run(_n: int | None, scenario_id: str | None, variants: dict[str, Any], reps: Any, seed: Any,
         key: str | None) -> tuple[Any, Any, Any]:
    if not _n:  # the button appearing (after sign-in) is no click
        return no_update, no_update, no_update
    if not scenario_id:
        return no_update, True, "pick a scenario first"
    if reps is None or seed is None:
        return no_update, True, "replications (≥ 2) and seed (≥ 0) are needed"
    common = {"replications": int(reps), "seed": int(seed)}
    base = set_args(variants["overrides"].get("Baseline", {}))
    batch: dict[str, Any] = {"scenario": scenario_id, "names": variants["names"], "runs": {}, "compares": {}}
    try:
        with client(key) as api:
            for name in variants["names"]:
                sets = set_args(variants["overrides"].get(name, {}))
                batch["runs"][name] = api.submit("run", scenario_id, {**common, "set": sets}).id
                if name != "Baseline":
                    batch["compares"][name] = api.submit("compare", scenario_id, {
                        **common, "b": scenario_id, "set_a": base, "set_b": sets}).id
    except ApiError as err:
        return no_update, True, api_error(err)
    n = len(batch["runs"]) + len(batch["compares"])
    return batch, False, f"{n} job(s) submitted"


@callback(Output("wi-progress", "children"), Output("wi-results", "children"),
          Output("wi-poll", "disabled"), Output("wi-status", "children"),
          Input("wi-poll", "n_intervals"), State("wi-batch", "data"), State("key", "data"), prevent_initial_call=True)
def _poll(_n: int, batch: dict[str, Any] | None, key: str | None) -> tuple[Any, Any, bool, Any]:
    if not batch:
        return no_update, no_update, True, no_update
    try:
        with client(key) as api:
            jobs = {jid: api.job(jid) for jid in [*batch["runs"].values(), *batch["compares"].values()]}
            fraction = sum(j.progress if not j.done else 1.0 for j in jobs.values()) / len(jobs)
            done = sum(j.done for j in jobs.values())
            bar = [progress_bar(fraction, "progress", id="wi-bar"),
                   html.Span(f"{done}/{len(jobs)} jobs · {fraction:.0%}", style=NOTE)]
            if done < len(jobs):
                return bar, no_update, False, no_update
            failed = [j for j in jobs.values() if j.status != "succeeded"]
            if failed:
                return bar, html.Div([html.Div(f"{j.kind} job {j.id[:8]} {j.status}: {j.error}", style=ERROR)
                                      for j in failed]), True, "failed"
            figures = {name: api.figures(jid) for name, jid in batch["runs"].items()}
    except ApiError as err:
        return no_update, html.Div(api_error(err), style=ERROR), True, "failed"
    return bar, results(batch, jobs, figures), True, "done"


def results(batch: dict[str, Any], jobs: dict[str, Any], figures: dict[str, list[Any]]) -> html.Div:
    names = batch["names"]
    runs = {n: jobs[batch["runs"][n]].result for n in names}
    cmps = {n: jobs[batch["compares"][n]].result for n in names if n in batch["compares"]}
    header = ["KPI", *[f"{n}" for n in names], *[f"{n} − Baseline" for n in cmps]]
    rows = []
    for k in KPIS:
        if k not in runs["Baseline"]["kpis"]:
            continue
        unit = runs["Baseline"]["kpis"][k]["unit"]
        row: list[Any] = [f"{k} [{unit}]" if unit else k]
        for n in names:
            e = runs[n]["kpis"].get(k, {})
            row.append(fmt(e.get("mean"), e.get("half_width")))
        for c in cmps.values():
            e = c["kpis"].get(k)
            if e is None:
                row.append("–")
                continue
            sig = e["p_value"] is not None and e["p_value"] < 0.05
            better = ((e["diff"] or 0) > 0) != (k in LOWER_IS_BETTER)
            row.append(html.Span(signed(e["diff"], e["half_width"]) + (" *" if sig else ""),
                                 style={"fontWeight": "700" if sig else "400",
                                        "color": ("#1a7f37" if better else "#b00020") if sig else "#333"},
                                 title=f"p = {e['p_value']:.3g}" if e["p_value"] is not None else "",
                                 className="significant" if sig else "not-significant"))
        rows.append(row)
    reps = runs["Baseline"]["replications"]
    parts: list[Any] = [
        html.H3("KPIs"),
        html.Div(f"{reps} replications each, 95 % confidence intervals; differences paired under common random "
                 f"numbers, * = significant at 5 %.", style=NOTE),
        table(header, rows, id="kpi-table"),
    ]
    if cmps:
        parts.append(dcc.Graph(id="diff-chart", figure=diff_chart(cmps)))
    tabs = [dcc.Tab(label=n, children=[dcc.Graph(figure=f) for f in figures.get(n, [])]) for n in names]
    parts.append(dcc.Tabs(tabs))
    return html.Div(parts, style=CARD)


def diff_chart(cmps: dict[str, Any], kpis: tuple[str, ...] = ("throughput", "lead_time", "wip")) -> go.Figure:
    from plotly.subplots import make_subplots

    shown = [k for k in kpis if all(k in c["kpis"] for c in cmps.values())]
    fig = make_subplots(rows=1, cols=len(shown), subplot_titles=[
        f"{k} [{next(iter(cmps.values()))['kpis'][k]['unit']}]" for k in shown])
    for i, k in enumerate(shown, 1):
        diffs = [c["kpis"][k]["diff"] for c in cmps.values()]
        hws = [c["kpis"][k]["half_width"] or 0 for c in cmps.values()]
        fig.add_trace(go.Bar(x=list(cmps), y=diffs, error_y={"type": "data", "array": hws}, name=k,
                             showlegend=False), row=1, col=i)
    fig.update_layout(title="Variant − Baseline (paired, 95 % CI)", template="plotly_white", height=320,
                      margin={"l": 50, "r": 20, "t": 70, "b": 40})
    return fig


@callback(Output("wi-results", "children", allow_duplicate=True), Input("wi-past", "value"), State("key", "data"),
          prevent_initial_call=True)
def _reopen(job_id: str | None, key: str | None) -> Any:
    if not job_id:
        return no_update
    try:
        with client(key) as api:
            job = api.job(job_id)
            figures = api.figures(job_id)
    except ApiError as err:
        return html.Div(api_error(err), style=ERROR)
    batch = {"names": ["Baseline"], "runs": {"Baseline": job_id}, "compares": {}}
    return results(batch, {job_id: job}, {"Baseline": figures})
