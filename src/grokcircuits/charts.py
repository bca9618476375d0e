"""Altair charts of the book: every chart has a title, axis titles with units, and a legend that
names conditions as the paper does. Rendered as static SVG (see book.setup_charts)."""
from __future__ import annotations

import altair as alt
import pandas as pd

SLOT_ORDER = ["h", "r1", "r2", "answer", "END"]


def curves(mean_frame: pd.DataFrame, title: str, y_title: str, facet: str | None = None,
           width: int = 260, height: int = 180) -> alt.Chart:
    """Mean across seeds (line) with its 95% interval (band), over optimiser steps."""
    base = alt.Chart(mean_frame).encode(
        x=alt.X("step:Q", title="optimiser steps"),
        color=alt.Color("condition:N", title="condition"),
    )
    band = base.mark_area(opacity=0.15).encode(y=alt.Y("low:Q", title=y_title, scale=alt.Scale(domain=[0, 1])), y2="high:Q")
    line = base.mark_line().encode(y=alt.Y("mean:Q", title=y_title), tooltip=["condition", "step", "mean", "seeds"])
    chart = (band + line).properties(width=width, height=height)
    if facet:   # two panels a row, so a page's column holds them at a readable size
        chart = chart.facet(facet=alt.Facet(f"{facet}:N", title=None), columns=2)
    return chart.properties(title=title)


def stage_slot_heatmap(frame: pd.DataFrame, stages: list[str], value: str, title: str, legend: str,
                       facet: str | None = None) -> alt.Chart:
    chart = alt.Chart(frame).mark_rect().encode(
        x=alt.X("slot:N", sort=SLOT_ORDER, title="token slot"),
        y=alt.Y("stage:N", sort=stages, title="recursion state (execution order)"),
        color=alt.Color(f"{value}:Q", title=legend, scale=alt.Scale(domain=[0, 1], scheme="viridis")),
        tooltip=["stage", "slot", alt.Tooltip(f"{value}:Q", format=".2f")],
    ).properties(width=120, height=220)
    if facet:
        chart = chart.facet(column=alt.Column(f"{facet}:N", title=None))
    return chart.properties(title=title)


def bars_with_intervals(frame: pd.DataFrame, x: str, y_title: str, title: str, color: str = "condition",
                        column: str | None = None, x_title: str | None = None) -> alt.Chart:
    """Bars of `mean` with `low`..`high` error bars (95% interval across seeds)."""
    base = alt.Chart(frame).encode(x=alt.X(f"{x}:N", title=x_title or x), color=alt.Color(f"{color}:N", title=color))
    bars = base.mark_bar().encode(y=alt.Y("mean:Q", title=y_title, scale=alt.Scale(domain=[0, 1])))
    err = base.mark_errorbar(color="black").encode(y="low:Q", y2="high:Q")
    chart = (bars + err).properties(width=160, height=180)
    if column:
        chart = chart.facet(column=alt.Column(f"{column}:N", title=None))
    return chart.properties(title=title)


def cost_bars(frame: pd.DataFrame, title: str) -> alt.Chart:
    return alt.Chart(frame).mark_bar().encode(
        x=alt.X("wall_seconds:Q", title="training wall time (seconds)"),
        y=alt.Y("run:N", title=None, sort="-x"),
        color=alt.Color("device:N", title="device"),
        tooltip=["run", "steps", "wall_seconds", "device"],
    ).properties(width=420, title=title)
