"""The calibration report: per fitted sample a histogram with the fitted density, a QQ plot against
the fitted distribution, and a table of every parameter with its CI, AIC, BIC and KS statistic."""
from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from twins.calibration.calibrate import Calibration
from twins.calibration.fit import Fit

#: points drawn per QQ plot and histogram (a 1 M-event log must not make a 100 MB page)
MAX_POINTS = 5_000


def _samples(cal: Calibration) -> list[tuple[str, Fit]]:
    out: list[tuple[str, Fit]] = []
    if cal.interarrival is not None:
        out.append(("inter-arrival time", cal.interarrival))
    for s in cal.stations:
        for p, f in s.process.items():
            out.append((f"{s.name}: process time{' of ' + p if p else ''}", f))
        if s.ttf is not None:
            out.append((f"{s.name}: up time between failures", s.ttf))
        if s.repair is not None:
            out.append((f"{s.name}: repair time", s.repair))
        for (a, b), f in s.setup.items():
            out.append((f"{s.name}: setup {a or '(first)'} → {b}", f))
    return out


def fit_figure(title: str, fit: Fit, rng: np.random.Generator) -> go.Figure:
    """Histogram with the fitted density (left), QQ plot (right)."""
    x = fit.values
    if x.size > MAX_POINTS:
        x = np.sort(rng.choice(x, MAX_POINTS, replace=False))
    fig = make_subplots(rows=1, cols=2, subplot_titles=("histogram and fitted density", "QQ plot"))
    fig.add_trace(go.Histogram(x=x, histnorm="probability density", name="observed", nbinsx=50), row=1, col=1)
    if not fit.too_few and fit.family not in ("constant", "empirical") and x.size:
        frozen = fit.frozen()
        grid = np.linspace(float(x.min()), float(x.max()), 200)
        fig.add_trace(go.Scatter(x=grid, y=frozen.pdf(grid), name=f"{fit.family} fit"), row=1, col=1)
        q = np.sort(x)
        theo = frozen.ppf((np.arange(1, q.size + 1) - 0.5) / q.size)
        fig.add_trace(go.Scatter(x=theo, y=q, mode="markers", name="quantiles", marker={"size": 3}), row=1, col=2)
        lo, hi = float(min(theo.min(), q.min())), float(max(theo.max(), q.max()))
        fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="y = x",
                                 line={"dash": "dot"}), row=1, col=2)
    fig.update_layout(title=f"{title} — {fit.family}, n = {fit.n}"
                            + (f" (+{fit.n_censored} censored)" if fit.n_censored else ""),
                      height=360, showlegend=False)
    fig.update_xaxes(title_text="s", row=1, col=1)
    fig.update_xaxes(title_text="fitted quantile (s)", row=1, col=2)
    fig.update_yaxes(title_text="observed quantile (s)", row=1, col=2)
    return fig


def _num(v: Any) -> str:
    return "—" if v is None else (f"{v:.4g}" if isinstance(v, float) else html.escape(str(v)))


def _table(cal: Calibration) -> str:
    rows = []
    for title, f in _samples(cal):
        params = ", ".join(f"{k}={_num(v)}" for k, v in f.spec.items() if k != "dist" and not isinstance(v, list))
        ci = f"[{f.mean_ci[0]:.4g}, {f.mean_ci[1]:.4g}]" if f.mean_ci else "—"
        cv = f"[{f.cv_ci[0]:.3g}, {f.cv_ci[1]:.3g}]" if f.cv_ci else "—"
        note = "too few observations: not fitted" if f.too_few else ""
        rows.append(f"<tr><td>{html.escape(title)}</td><td>{f.family}</td><td>{html.escape(params)}</td>"
                    f"<td>{f.mean:.4g}</td><td>{ci}</td><td>{cv}</td><td>{f.n}</td><td>{f.n_censored}</td>"
                    f"<td>{_num(f.aic)}</td><td>{_num(f.bic)}</td><td>{_num(f.ks)}</td><td>{note}</td></tr>")
    for s in cal.stations:
        for what, (k, n, (lo, hi)) in (("scrap", s.scrap), ("rework", s.rework)):
            if n:
                rows.append(f"<tr><td>{html.escape(s.name)}: {what} fraction</td><td>binomial</td>"
                            f"<td>{k} of {n}</td><td>{k / n:.4g}</td><td>[{lo:.4g}, {hi:.4g}]</td><td>—</td>"
                            f"<td>{n}</td>"
                            "<td>0</td><td>—</td><td>—</td><td>—</td><td>Wilson 95 %</td></tr>")
    head = ("<tr><th>sample</th><th>family</th><th>parameters</th><th>mean (s)</th><th>95 % CI of the mean</th>"
            "<th>95 % CI of the cv</th>"
            "<th>n</th><th>censored</th><th>AIC</th><th>BIC</th><th>KS</th><th>note</th></tr>")
    return f"<table>{head}{''.join(rows)}</table>"


def write_calibration_report(cal: Calibration, path: str | Path) -> Path:
    rng = np.random.default_rng(0)  # only thins what is drawn
    parts = [f"<h1>Calibration of {html.escape(cal.file)}</h1>",
             f"<p>{cal.events} events over {cal.span:.6g} s. Families chosen by AIC; KS statistic on the "
             "uncensored observations.</p>", _table(cal)]
    notes = cal.notes + [f"{s.name}: {n}" for s in cal.stations for n in s.notes]
    if notes:
        parts.append("<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>")
    for i, (title, f) in enumerate(_samples(cal)):
        parts.append(fit_figure(title, f, rng).to_html(full_html=False, include_plotlyjs=(i == 0)))
    style = "<style>body{font-family:sans-serif}table{border-collapse:collapse}td,th{border:1px solid #ccc;" \
            "padding:2px 6px;font-size:13px}</style>"
    out = Path(path)
    out.write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>calibration</title>{style}</head>"
                   f"<body>{''.join(parts)}</body></html>")
    return out
