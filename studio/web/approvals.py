"""The Approvals page, the approver's view of a recommendation: its card, the difference against the
plant's current values (``GET /recommendations/{id}/diff``), approve or reject it (four eyes: the
API refuses the key that created it), push it — a dry run first, then for real — and read the
outcome and the audit trail of that recommendation. Only a role that may approve sees the buttons."""
from __future__ import annotations

from typing import Any

from dash import Input, Output, State, callback, ctx, dcc, html, no_update

from studio.api.client import ApiError, Client
from studio.api.roles import may
from studio.web import recommendation
from studio.web.common import BUTTON, CARD, ERROR, NOTE, api_error, client, fmt, signed, table

#: statuses from which each action is possible (docs/api.md#recommendations)
APPROVABLE = frozenset({"validated", "approved"})  # approved: again, once the approval expired
REJECTABLE = frozenset({"draft", "validated", "approved"})
DRY_RUNNABLE = frozenset({"validated", "approved"})
OK = {"color": "#1a7f37", "fontSize": "14px"}


def layout() -> html.Div:
    return html.Div([
        html.Div([
            html.Div([
                html.Label("Recommendation ", style={"fontWeight": "600"}),
                dcc.Dropdown(id="ap-rec", placeholder="pick a recommendation",
                             style={"width": "620px", "display": "inline-block", "verticalAlign": "middle"}),
            ], style={"margin": "4px 0"}),
            html.Div([
                html.Label("Plant endpoint ", style={"fontWeight": "600"}),
                dcc.Input(id="ap-endpoint", type="text", placeholder="opc.tcp://127.0.0.1:4840/twinopt/",
                          persistence=True, persistence_type="session", style={"width": "420px"}),
                html.Button("Read the plant", id="ap-diff-button", style={**BUTTON, "marginLeft": "8px"}),
            ], style={"margin": "4px 0"}),
        ], style=CARD),
        html.Div(id="ap-view"),
        html.Div(id="ap-diff"),
        html.Div([
            html.Div(id="ap-actions"),
            html.Div(id="ap-outcome", style={"marginTop": "8px"}),
        ], style=CARD),
        html.Div(id="ap-audit"),
        dcc.Store(id="ap-current"),   # status and id of the recommendation shown
        dcc.Store(id="ap-dry-run"),   # {"rec", "endpoint"} of the last dry run that passed
        dcc.Store(id="ap-refresh", data=0),
    ])


# ------------------------------------------------------------------------------------ callbacks

@callback(Output("ap-actions", "children"), Input("role", "data"))
def _actions(role: str | None) -> Any:
    """The decision and push controls, only for a role that may use them."""
    if not may(role, "approve"):
        who = f"a {role} key" if role else "nobody signed in"
        return html.Span(f"{who}: reading only — approving, rejecting and pushing need an approver's key.",
                         style=NOTE)
    return html.Div([
        html.Div([
            dcc.Input(id="ap-comment", type="text", placeholder="comment (optional)", style={"width": "360px"}),
            html.Button("Approve", id="ap-approve", disabled=True, style={**BUTTON, "marginLeft": "8px"}),
            html.Button("Reject", id="ap-reject", disabled=True, style=BUTTON),
        ]),
        html.Div([
            html.Button("Dry run", id="ap-dry", disabled=True, style=BUTTON),
            html.Button("Push", id="ap-push", disabled=True, style={**BUTTON, "fontWeight": "600"}),
            html.Span("a push needs an approval by someone else and a passing dry run to the same endpoint",
                      style=NOTE),
        ], style={"marginTop": "8px"}),
    ])


@callback(Output("ap-approve", "disabled"), Output("ap-reject", "disabled"), Output("ap-dry", "disabled"),
          Output("ap-push", "disabled"), Input("ap-current", "data"), Input("ap-dry-run", "data"),
          Input("ap-endpoint", "value"))
def _enabled(current: dict[str, Any] | None, dry: dict[str, Any] | None,
             endpoint: str | None) -> tuple[bool, bool, bool, bool]:
    if not current:
        return True, True, True, True
    status, endpoint = current["status"], (endpoint or "").strip()
    dry_passed = bool(dry and dry.get("rec") == current["id"] and dry.get("endpoint") == endpoint)
    return (status not in APPROVABLE, status not in REJECTABLE, status not in DRY_RUNNABLE or not endpoint,
            status != "approved" or not dry_passed)


@callback(Output("ap-rec", "options"), Input("key", "data"), Input("tabs", "value"), Input("ap-refresh", "data"))
def _choices(key: str | None, _tab: str, _refresh: int) -> Any:
    if not key:
        return []
    try:
        with client(key) as api:
            recs = api.recommendations()
    except ApiError:
        return no_update
    return [{"label": recommendation.label(r), "value": r["id"]} for r in recs]


@callback(Output("ap-view", "children"), Output("ap-audit", "children"), Output("ap-current", "data"),
          Input("ap-rec", "value"), Input("ap-refresh", "data"), State("key", "data"))
def _show(rec_id: str | None, _refresh: int, key: str | None) -> tuple[Any, Any, Any]:
    if not rec_id or not key:
        return html.Div("Pick a recommendation to review it.", style={**NOTE, **CARD}), [], None
    try:
        with client(key) as api:
            rec = api.recommendation(rec_id)
            trail = audit_trail(api, rec_id)
    except ApiError as err:
        return html.Div(api_error(err), style=ERROR), [], None
    return recommendation.view(rec), trail, {"id": rec["id"], "status": rec["status"]}


@callback(Output("ap-outcome", "children", allow_duplicate=True), Output("ap-diff", "children", allow_duplicate=True),
          Input("ap-rec", "value"), prevent_initial_call=True)
def _another(_rec_id: str | None) -> tuple[str, list[Any]]:
    """Another recommendation: the last outcome and plant reading were about the one before."""
    return "", []


@callback(Output("ap-diff", "children"), Input("ap-diff-button", "n_clicks"), Input("ap-refresh", "data"),
          State("ap-rec", "value"), State("ap-endpoint", "value"), State("key", "data"), prevent_initial_call=True)
def _diff(clicks: int | None, _refresh: int, rec_id: str | None, endpoint: str | None, key: str | None) -> Any:
    """Read the plant when asked, and again after every action (a push changes what it holds)."""
    endpoint = (endpoint or "").strip()
    if not rec_id or (ctx.triggered_id == "ap-refresh" and not (clicks and endpoint)):
        return no_update
    if not endpoint:
        return html.Div("give the plant's OPC UA endpoint (opc.tcp://…)", style={**ERROR, **CARD})
    try:
        with client(key) as api:
            d = api.diff(rec_id, endpoint)
    except ApiError as err:
        return html.Div(api_error(err), style={**ERROR, **CARD})
    rows = [[t["tag"], fmt(t["current"], digits=6), fmt(t["target"], digits=6), signed(t["delta"], digits=4),
             t["unit"]] for t in d["tags"]]
    return html.Div([
        html.H4("Against the plant now", style={"margin": "0 0 4px"}),
        html.Div(f"read from {d['endpoint']}", style=NOTE),
        table(["tag", "current", "target", "change", "unit"], rows, id="ap-diff-table"),
    ], style=CARD)


@callback(Output("ap-outcome", "children"), Output("ap-refresh", "data"), Output("ap-dry-run", "data"),
          Input("ap-approve", "n_clicks"), Input("ap-reject", "n_clicks"), Input("ap-dry", "n_clicks"),
          Input("ap-push", "n_clicks"), State("ap-rec", "value"), State("ap-endpoint", "value"),
          State("ap-comment", "value"), State("ap-refresh", "data"), State("key", "data"), prevent_initial_call=True)
def _act(_a: int | None, _r: int | None, _d: int | None, _p: int | None, rec_id: str | None, endpoint: str | None,
         comment: str | None, refresh: int, key: str | None) -> tuple[Any, Any, Any]:
    action = ctx.triggered_id
    if not rec_id or not ctx.triggered or not ctx.triggered[0]["value"]:
        return no_update, no_update, no_update
    endpoint = (endpoint or "").strip()
    try:
        with client(key) as api:
            message, dry = act(api, str(action), rec_id, endpoint, comment or None)
    except ApiError as err:
        return html.Div(api_error(err), id="ap-refused", style=ERROR), (refresh or 0) + 1, no_update
    return message, (refresh or 0) + 1, dry


def act(api: Client, action: str, rec_id: str, endpoint: str, comment: str | None) -> tuple[Any, Any]:
    """Do ``action`` (ap-approve, ap-reject, ap-dry, ap-push): the message and the dry run to remember."""
    if action == "ap-approve":
        rec = api.approve(rec_id, comment)
        return html.Div(f"approved until {(rec.get('expires_at') or '')[:19]}", style=OK), no_update
    if action == "ap-reject":
        api.reject(rec_id, comment)
        return html.Div("rejected", style=OK), None
    dry_run = action == "ap-dry"
    res = api.push(rec_id, endpoint, dry_run=dry_run)
    changes = html.Ul([html.Li(f"{c['tag']}: {fmt(c['old'], digits=6)} → {fmt(c['target'], digits=6)}")
                       for c in res["changes"]], style={"margin": "4px 0"})
    good = res["outcome"] in ("dry-run", "verified")
    text: list[Any] = [html.B(("Dry run: " if dry_run else "Push: ") + res["outcome"], id="ap-push-outcome"),
            f" · recommendation {res['status']} · {res['endpoint']}",
            html.Div(res["detail"], style=NOTE) if res.get("detail") else "", changes]
    remembered = {"rec": rec_id, "endpoint": endpoint} if dry_run and res["outcome"] == "dry-run" else no_update
    return html.Div(text, style=OK if good else ERROR), remembered


def audit_trail(api: Client, rec_id: str) -> html.Div:
    """This recommendation's entries of the audit trail (its transitions, the gateway's pushes and
    writes) and whether the whole hash chain holds."""
    entries: list[dict[str, Any]] = []
    offset = 0
    while True:  # the trail is read in pages by seq
        page = api.audit(offset=offset, limit=1000)
        entries += [e for e in page if (e.get("recommendation") or {}).get("id") == rec_id]
        if len(page) < 1000:
            break
        offset += len(page)
    check = api.audit_verify()
    rows = [[str(e["seq"]), e["time"][:19], e["user"], e["action"], e["outcome"],
             "; ".join(f"{c['tag']} {fmt(c['old'], digits=6)} → {fmt(c['new'], digits=6)}" for c in e["changes"])
             or (e.get("detail") or "")] for e in entries]
    chain = (html.Span(f"hash chain intact ({check['entries']} entr{'y' if check['entries'] == 1 else 'ies'} "
                                f"in the whole trail)", style=OK) if check["ok"] else
             html.Span("the hash chain is broken: " + "; ".join(check["problems"][:3]), style=ERROR))
    return html.Div([
        html.H4("Audit trail of this recommendation", style={"margin": "0 0 4px"}),
        html.Div(chain, id="ap-chain"),
        table(["seq", "time (UTC)", "who", "action", "outcome", "changes / detail"], rows, id="ap-audit-table")
        if rows else html.Div("no entries yet", style=NOTE),
    ], style=CARD)
