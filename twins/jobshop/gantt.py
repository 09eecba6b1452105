"""Gantt charts of job-shop schedules (plotly)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from twins.jobshop.schedule import Schedule

if TYPE_CHECKING:
    import plotly.graph_objects as go


def gantt_figure(schedule: Schedule, title: str | None = None) -> go.Figure:
    """A plotly Gantt chart (horizontal bars, machines on the y axis) of any job-shop schedule."""
    import plotly.graph_objects as go
    from plotly.colors import qualitative

    palette = qualitative.Dark24 + qualitative.Light24
    fig = go.Figure()
    jobs = sorted({o.job for o in schedule.operations})
    for j in jobs:
        ops = [o for o in schedule.operations if o.job == j]
        fig.add_trace(go.Bar(
            x=[o.end - o.start for o in ops], base=[o.start for o in ops], y=[f"M{o.machine}" for o in ops],
            orientation="h", name=f"job {j}", marker_color=palette[j % len(palette)],
            customdata=[(o.op, o.start, o.end) for o in ops],
            hovertemplate=f"job {j}" + " op %{customdata[0]}<br>%{customdata[1]}–%{customdata[2]}<extra></extra>"))
    fig.update_layout(barmode="overlay", xaxis_title="time", yaxis_title="machine",
                      title=title or f"{schedule.instance} — makespan {schedule.makespan:g}",
                      yaxis={"categoryorder": "category descending"})
    return fig
