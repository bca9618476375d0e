"""Altair charts of the book: every chart has a title, axis titles with units, and a legend that
names conditions as the paper does. Rendered as static SVG (see book.setup_charts).

Every chart fits the book's text column (about 700 px): facets wrap two a row, legends sit
below the plot with room for the longest condition name, and a long title is split into a title
and a subtitle instead of being cut."""
from __future__ import annotations

import altair as alt
import pandas as pd

SLOT_ORDER = ["h", "r1", "r2", "answer", "END"]
COLUMN_WIDTH = 680            # px: what a chart may take of the page's text column
LEGEND = alt.Legend(orient="bottom", direction="vertical", columns=2, labelLimit=320, titleLimit=320,
                    symbolType="stroke", symbolOpacity=1.0, symbolStrokeWidth=3)   # for lines
BAR_LEGEND = alt.Legend(orient="bottom", direction="vertical", columns=2, labelLimit=320, titleLimit=320,
                        symbolType="square", symbolOpacity=1.0)


# a panel's name with a parenthesis goes on two lines: "exact match" / "(every supervised slot)"
_TWO_LINES = ("indexof(datum.label, ' (') > 0 ? [substring(datum.label, 0, indexof(datum.label, ' (')), "
              "substring(datum.label, indexof(datum.label, ' (') + 1)] : datum.label")


def _header(limit: int) -> alt.Header:
    return alt.Header(labelLimit=limit, labelFontSize=12, labelExpr=_TWO_LINES)


def _title(title: str, subtitle: str | None = None) -> alt.TitleParams:
    return alt.TitleParams(text=title, subtitle=subtitle or "", anchor="start", limit=COLUMN_WIDTH)


def curves(mean_frame: pd.DataFrame, title: str, y_title: str, facet: str | None = None,
           width: int = 270, height: int = 170, subtitle: str | None = None, facet_order: list | None = None) -> alt.Chart:
    """Mean across seeds (line) with its 95% interval (band, drawn only where two or more seeds
    give one), over optimiser steps. Panels follow `facet_order` (default: first appearance)."""
    base = alt.Chart(mean_frame).encode(
        x=alt.X("step:Q", title="optimiser steps", axis=alt.Axis(format="~s")),
        color=alt.Color("condition:N", title="condition", legend=LEGEND),
    )
    band = base.transform_filter(alt.datum.seeds >= 2).mark_area(opacity=0.15).encode(
        y=alt.Y("low:Q", title=y_title, scale=alt.Scale(domain=[0, 1])), y2="high:Q")
    line = base.mark_line().encode(y=alt.Y("mean:Q", title=y_title, scale=alt.Scale(domain=[0, 1])),
                                   tooltip=["condition", "step", alt.Tooltip("mean:Q", format=".3f"), "seeds"])
    chart = (band + line).properties(width=width if facet else 2 * width, height=height)
    if facet:   # two panels a row, so the page's column holds them at a readable size
        order = facet_order or list(pd.unique(mean_frame[facet]))
        chart = chart.facet(facet=alt.Facet(f"{facet}:N", title=None, sort=order,
                                            header=_header(width)), columns=2)
    return chart.properties(title=_title(title, subtitle))


def stage_slot_heatmap(frame: pd.DataFrame, stages: list[str], value: str, title: str, legend: str,
                       facet: str | None = None, subtitle: str | None = None) -> alt.Chart:
    """Where (recursion state x token slot) a share is high; one panel per `facet` value, three a row."""
    chart = alt.Chart(frame).mark_rect().encode(
        x=alt.X("slot:N", sort=SLOT_ORDER, title="token slot"),
        y=alt.Y("stage:N", sort=stages, title="recursion state (execution order)"),
        color=alt.Color(f"{value}:Q", title=legend, scale=alt.Scale(domain=[0, 1], scheme="viridis"),
                        legend=alt.Legend(orient="bottom", titleLimit=320)),
        tooltip=["stage", "slot", alt.Tooltip(f"{value}:Q", format=".2f")],
    ).properties(width=130, height=220)
    if facet:
        chart = chart.facet(facet=alt.Facet(f"{facet}:N", title=None, sort=list(pd.unique(frame[facet])),
                                            header=_header(150)), columns=3)
    return chart.properties(title=_title(title, subtitle))


def bars_with_intervals(frame: pd.DataFrame, x: str, y_title: str, title: str, color: str = "condition",
                        column: str | None = None, x_title: str | None = None, subtitle: str | None = None) -> alt.Chart:
    """Bars of `mean` with `low`..`high` error bars (95% interval across seeds); the legend names
    the bars, so their axis labels are left out."""
    base = alt.Chart(frame).encode(x=alt.X(f"{x}:N", title=x_title, axis=alt.Axis(labels=False, ticks=False)))
    bars = base.mark_bar().encode(y=alt.Y("mean:Q", title=y_title, scale=alt.Scale(domain=[0, 1])),
                                  color=alt.Color(f"{color}:N", title=color, legend=BAR_LEGEND),
                                  tooltip=[x, alt.Tooltip("mean:Q", format=".3f"), alt.Tooltip("low:Q", format=".3f"),
                                           alt.Tooltip("high:Q", format=".3f")])
    err = base.mark_errorbar(color="black").encode(y=alt.Y("low:Q", title=y_title), y2="high:Q")
    chart = (bars + err).properties(width=250, height=150)
    if column:
        chart = chart.facet(facet=alt.Facet(f"{column}:N", title=None, sort=list(pd.unique(frame[column])),
                                            header=_header(250)), columns=2)
    return chart.properties(title=_title(title, subtitle))


def cost_bars(frame: pd.DataFrame, title: str, subtitle: str | None = None) -> alt.Chart:
    """Training wall time of every run, longest first."""
    return alt.Chart(frame).mark_bar().encode(
        x=alt.X("wall_seconds:Q", title="training wall time (seconds)"),
        y=alt.Y("run:N", title=None, sort="-x", axis=alt.Axis(labelLimit=300)),
        color=alt.Color("device:N", title="device", legend=BAR_LEGEND),
        tooltip=["run", "steps", "wall_seconds", "device"],
    ).properties(width=320, title=_title(title, subtitle))


def retention(frame: pd.DataFrame, title: str, subtitle: str | None = None) -> alt.Chart:
    """OOD exact match over the epochs of a continuation, one panel a screen point: the natural data
    (solid) against the both-hops-full control (dashed) where there is one."""
    chart = alt.Chart(frame).mark_line(point=True).encode(
        x=alt.X("epoch:Q", title="epochs of the natural data since the start"),
        y=alt.Y("ood:Q", title="OOD exact match", scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("data:N", title="continued on", legend=LEGEND),
        strokeDash=alt.StrokeDash("data:N", legend=None),
        tooltip=["point", "data", "epoch", alt.Tooltip("ood:Q", format=".2f"), alt.Tooltip("ood_atomic:Q", format=".2f")],
    ).properties(width=200, height=120)
    chart = chart.facet(facet=alt.Facet("point:N", title=None, sort=list(pd.unique(frame["point"])),
                                        header=_header(200)), columns=3)
    return chart.properties(title=_title(title, subtitle))


def retention_summary(frame: pd.DataFrame, retains_at: float, title: str, subtitle: str | None = None) -> alt.Chart:
    """OOD exact match at each report epoch of the natural continuation, a row per screen point,
    a panel per graph; the rule marks the share a point must keep at the last epoch to retain."""
    epochs = list(pd.unique(frame["epoch"]))
    points = alt.Chart().mark_point(filled=True, size=60).encode(
        x=alt.X("ood:Q", title="OOD exact match on the natural data", scale=alt.Scale(domain=[0, 1])),
        y=alt.Y("point:N", title=None, sort=list(pd.unique(frame["point"])), axis=alt.Axis(labelLimit=320)),
        color=alt.Color("epoch:N", title="natural-data epochs since the fit", sort=epochs, legend=BAR_LEGEND),
        tooltip=["graph", "point", "epoch", alt.Tooltip("ood:Q", format=".2f"),
                 alt.Tooltip("ood_atomic:Q", format=".2f"), "reading"])
    rule = alt.Chart().mark_rule(strokeDash=[4, 4], color="gray").encode(x=alt.datum(retains_at))
    chart = alt.layer(points, rule, data=frame).properties(width=360).facet(
        row=alt.Row("graph:N", title=None, sort=list(pd.unique(frame["graph"])),
                    header=alt.Header(labelAngle=0, labelOrient="top", labelAnchor="start", labelFontSize=12,
                                      labelLimit=360))
    ).resolve_scale(y="independent")
    return chart.properties(title=_title(title, subtitle))
