"""The studio's shell: the API key (kept in the browser's session), who is signed in, the pages."""
from __future__ import annotations

from typing import Any

from dash import Dash, Input, Output, State, callback, dcc, html, no_update

from studio.api.client import ApiError
from studio.web import approvals, optimize, plant, whatif
from studio.web.common import API, BUTTON, ERROR, NOTE, api_error, client


def create_app(api_url: str, key: str | None = None) -> Dash:
    """The Dash app talking to the API at ``api_url``; ``key`` pre-fills the sign-in."""
    API["url"] = api_url.rstrip("/")
    app = Dash(__name__, title="twinopt studio", suppress_callback_exceptions=True, update_title="")
    app.layout = html.Div([
        html.Div([
            html.Span("twinopt studio", style={"fontWeight": "700", "fontSize": "20px", "marginRight": "24px"}),
            html.Span(f"API {API['url']}", style={**NOTE, "marginRight": "16px"}),
            dcc.Input(id="key-input", type="password", placeholder="API key", value=key or "", debounce=True,
                      style={"width": "300px"}),
            html.Button("Sign in", id="sign-in", style={**BUTTON, "marginLeft": "8px"}),
            html.Span(id="who", style={"marginLeft": "12px", "fontSize": "14px"}),
        ], style={"padding": "12px 20px", "background": "#ffffff", "borderBottom": "1px solid #e3e6ea"}),
        dcc.Store(id="key", storage_type="session"),
        dcc.Store(id="role", storage_type="session"),
        dcc.Tabs(id="tabs", value="whatif", children=[
            dcc.Tab(label="What-if", value="whatif", children=whatif.layout()),
            dcc.Tab(label="Optimize", value="optimize", children=optimize.layout()),
            dcc.Tab(label="Approvals", value="approvals", children=approvals.layout()),
            dcc.Tab(label="Plant", value="plant", children=plant.layout()),
        ]),
    ], style={"fontFamily": "system-ui, sans-serif", "background": "#f7f8fa", "minHeight": "100vh",
              "padding": "0 0 40px"})
    return app


@callback(Output("key", "data"), Output("role", "data"), Output("who", "children"),
          Input("sign-in", "n_clicks"), Input("key-input", "value"), State("key", "data"))
def _sign_in(_n: int | None, typed: str | None, stored: str | None) -> tuple[Any, Any, Any]:
    key = (typed or "").strip() or stored
    if not key:
        return None, None, html.Span("enter an API key (twinopt keys create)", style=NOTE)
    try:
        with client(key) as api:
            me = api.me()
    except ApiError as err:
        return None, None, html.Span(api_error(err), style=ERROR)
    except Exception as err:  # noqa: BLE001 - the API is down: say so
        return no_update, no_update, html.Span(f"the API does not answer: {type(err).__name__}", style=ERROR)
    return key, me["role"], html.Span([html.B(me["name"]), f" ({me['role']})"], id="who-name")
