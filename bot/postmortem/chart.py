"""The postmortem chart: watched metrics with baseline, boundary and the incident's moments.

matplotlib is imported inside :func:`render_chart` only, so importing the postmortem package
from a web or Slack request path does not pay for it.
"""

from __future__ import annotations

import io
import threading
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from bot.postmortem.facts import ChartMarker, MetricSeries, PostmortemFacts

if TYPE_CHECKING:
    from matplotlib.axes import Axes

WIDTH_INCHES = 10.0
PANEL_HEIGHT_INCHES = 2.6
DPI = 100
_PAD = timedelta(minutes=5)
_MARKER_COLOURS = {
    "deploy": "#7f7f7f",
    "detection": "#d62728",
    "approval": "#ff7f0e",
    "mitigation": "#2ca02c",
}
# No pyplot (no global figure state), but matplotlib's caches are not thread-safe: the web
# app renders charts in a thread pool, so draw one at a time.
_LOCK = threading.Lock()


def render_chart(facts: PostmortemFacts) -> bytes:
    """A PNG of each watched metric (one panel each), or a placeholder panel without metrics."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    series = [s for s in facts.metrics if s.points]
    panels = max(1, len(series))
    with _LOCK:
        height = PANEL_HEIGHT_INCHES * panels + 0.6
        figure = Figure(figsize=(WIDTH_INCHES, height), dpi=DPI)
        FigureCanvasAgg(figure)
        axes_list = figure.subplots(panels, 1, sharex=bool(series), squeeze=False)[:, 0]
        title = f"Incident #{facts.incident_id}: {facts.model or facts.title}"
        figure.suptitle(title.replace("$", r"\$"), fontsize=11)  # "$…$" is math to matplotlib
        if series:
            for axes, metric in zip(axes_list, series, strict=True):
                _plot_impact(axes, facts)
                _plot_metric(axes, metric)
                _plot_markers(axes, facts.markers)
            axes_list[-1].set_xlabel("time (UTC)")
        else:
            _plot_placeholder(axes_list[0], facts.markers)
        # Fixed margins in inches (room for the legends on the right): tight_layout would
        # draw the whole figure an extra time.
        figure.subplots_adjust(
            left=0.8 / WIDTH_INCHES,
            right=1 - (1.9 if series else 0.3) / WIDTH_INCHES,
            top=1 - 0.6 / height,
            bottom=0.55 / height,
            hspace=0.35,
        )
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _plot_metric(axes: Axes, metric: MetricSeries) -> None:
    scale = 100.0 if metric.unit == "ratio" else 1.0
    times = _numbers([point.at for point in metric.points])
    values = [point.value * scale for point in metric.points]
    style = "-" if len(times) > 20 else "-o"
    axes.plot(times, values, style, color="#1f77b4", linewidth=1.4, markersize=3, label="observed")
    _plot_level(axes, metric, "baseline", scale, colour="#555555", style=":")
    _plot_level(axes, metric, "limit", scale, colour="#d62728", style="--")
    unit = {"ratio": "%", "s": "s"}.get(metric.unit, "")
    axes.set_ylabel(f"{metric.label}" + (f" ({unit})" if unit else ""), fontsize=9)
    axes.set_title(f"{metric.label} ({metric.source})", fontsize=9, loc="left")
    axes.grid(True, alpha=0.3)
    # Outside the plot, so it never hides a marker's label or the data.
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    _format_time_axis(axes)


def _plot_level(axes: Axes, metric: MetricSeries, name: str, scale: float, **style: Any) -> None:
    # Baseline and boundary can change between evaluations; draw them as steps over time.
    levels = [(p.at, getattr(p, name)) for p in metric.points if getattr(p, name) is not None]
    if not levels:
        return
    label = "baseline (safe version)" if name == "baseline" else "rollback boundary"
    if len({value for _, value in levels}) == 1:
        axes.axhline(
            levels[0][1] * scale,
            color=style["colour"],
            linestyle=style["style"],
            linewidth=1.2,
            label=label,
        )
        return
    axes.step(
        _numbers([at for at, _ in levels]),
        [value * scale for _, value in levels],
        where="post",
        color=style["colour"],
        linestyle=style["style"],
        linewidth=1.2,
        label=label,
    )


def _plot_impact(axes: Axes, facts: PostmortemFacts) -> None:
    impact = facts.impact
    if impact.start is None or impact.end is None or impact.end <= impact.start:
        return
    start, end = _numbers([impact.start, impact.end])
    axes.axvspan(start, end, color="#d62728", alpha=0.07, label="impact window")


def _plot_markers(axes: Axes, markers: tuple[ChartMarker, ...]) -> None:
    for index, marker in enumerate(markers):
        colour = _MARKER_COLOURS.get(marker.label.split(" ")[0], "#9467bd")
        (at,) = _numbers([marker.at])
        axes.axvline(at, color=colour, linewidth=1.1, alpha=0.85)
        axes.annotate(
            marker.label,
            xy=(at, 1.0),
            xycoords=("data", "axes fraction"),
            # Moments minutes apart crowd a chart spanning hours: stagger their labels.
            xytext=(3, -12 - 11 * (index % 4)),
            textcoords="offset points",
            fontsize=8,
            color=colour,
            rotation=0,
        )


def _plot_placeholder(axes: Axes, markers: tuple[ChartMarker, ...]) -> None:
    axes.text(
        0.5,
        0.5,
        "No metric readings were recorded for this incident",
        ha="center",
        va="center",
        transform=axes.transAxes,
        fontsize=11,
        color="#555555",
    )
    axes.set_yticks([])
    if markers:
        moments = [marker.at for marker in markers]
        low, high = _numbers([min(moments) - _PAD, max(moments) + _PAD])
        axes.set_xlim(low, high)
        _plot_markers(axes, markers)
        _format_time_axis(axes)
    else:
        axes.set_xticks([])


def _numbers(moments: list[datetime]) -> list[float]:
    from matplotlib.dates import date2num

    return [float(date2num(moment)) for moment in moments]


def _format_time_axis(axes: Axes) -> None:
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

    locator = AutoDateLocator()
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(ConciseDateFormatter(locator))
