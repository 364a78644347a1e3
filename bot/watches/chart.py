"""The evidence chart posted with a degraded verdict: what the watch saw, step by step.

One panel per metric that degraded: the candidate's per-step values, the safe version's
where they sit next to them, its baseline level and the rollback boundary, the window that
decided shaded, and the deploy marked. matplotlib is imported inside
:func:`render_evidence_chart` only, so the worker and web processes do not load it to start.
"""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from bot.config.watch import MetricKind, denominator_column, numerator_column
from bot.detection.evidence import Decision, MetricEvidence
from bot.detection.rules import StepSeries
from bot.watches.reader import WatchSamples
from bot.watches.targets import WatchTarget

if TYPE_CHECKING:
    from matplotlib.axes import Axes

WIDTH_INCHES = 9.0
PANEL_HEIGHT_INCHES = 2.8
DPI = 100
_CANDIDATE = "#1f77b4"
_SAFE = "#7f7f7f"
_LIMIT = "#d62728"
# matplotlib's caches are not thread-safe; the worker's jobs may draw at the same time.
_LOCK = threading.Lock()

Points = list[tuple[float, float]]


@dataclass(frozen=True)
class EvidencePanel:
    """One degraded metric's readings, in the units a person reads (percent for rates)."""

    label: str
    unit: str
    candidate: Points
    safe: Points
    baseline_level: float | None
    limit: float | None
    window: tuple[float, float] | None
    # None when the deploy is older than the lookback and so lies off the chart.
    deployed_at: float | None


def evidence_panels(
    target: WatchTarget, decision: Decision, samples: WatchSamples
) -> list[EvidencePanel]:
    """The panels of the metrics that decided the verdict and have readings."""
    panels = []
    for evidence in decision.deciding_metrics:
        metric = target.watch.metrics.get(evidence.metric)
        if metric is None:
            continue
        scale, unit = (100.0, "%") if metric.kind == MetricKind.RATIO else (1.0, metric.unit)
        candidate = _values(target, evidence.metric, samples.candidate, samples.now, scale)
        if not candidate:
            continue
        panels.append(
            EvidencePanel(
                label=evidence.label or evidence.metric.replace("_", " "),
                unit=unit,
                candidate=candidate,
                safe=_safe_values(target, evidence.metric, samples, scale),
                baseline_level=_scaled(evidence.baseline_value, scale),
                limit=_scaled(evidence.limit_value, scale),
                window=_window(evidence, decision.evaluated_at),
                deployed_at=_deploy_shown(target, samples.candidate),
            )
        )
    return panels


def render_evidence_chart(
    target: WatchTarget, decision: Decision, samples: WatchSamples
) -> bytes | None:
    """A PNG of the degraded metrics, or None when none has readings to draw."""
    panels = evidence_panels(target, decision, samples)
    if not panels:
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with _LOCK:
        height = PANEL_HEIGHT_INCHES * len(panels) + 0.7
        figure = Figure(figsize=(WIDTH_INCHES, height), dpi=DPI)
        FigureCanvasAgg(figure)
        axes_list = figure.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
        figure.suptitle(_title(target), fontsize=11)
        for axes, panel in zip(axes_list, panels, strict=True):
            _plot_panel(axes, panel)
        axes_list[-1].set_xlabel("time (UTC)")
        # Fixed margins in inches with room for the legend on the right: tight_layout would
        # draw the figure an extra time.
        figure.subplots_adjust(
            left=0.8 / WIDTH_INCHES,
            right=1 - 2.0 / WIDTH_INCHES,
            top=1 - 0.6 / height,
            bottom=0.55 / height,
            hspace=0.4,
        )
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _title(target: WatchTarget) -> str:
    deployed = target.deployed_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"{target.model}: version {target.candidate_version} (deployed {deployed}) "
        f"vs safe version {target.baseline_version}"
    )


def _plot_panel(axes: Axes, panel: EvidencePanel) -> None:
    if panel.window is not None:
        start, end = _dates([panel.window[0], panel.window[1]])
        axes.axvspan(start, end, color=_LIMIT, alpha=0.08, label="judged window")
    if panel.safe:
        axes.plot(
            _dates([t for t, _ in panel.safe]),
            [v for _, v in panel.safe],
            color=_SAFE,
            linewidth=1.0,
            alpha=0.8,
            label="safe version",
        )
    times = [t for t, _ in panel.candidate]
    style = "-" if len(times) > 30 else "-o"
    axes.plot(
        _dates(times),
        [v for _, v in panel.candidate],
        style,
        color=_CANDIDATE,
        linewidth=1.4,
        markersize=3,
        label="candidate",
    )
    if panel.baseline_level is not None:
        axes.axhline(panel.baseline_level, color="#333333", linestyle=":", label="baseline")
    if panel.limit is not None:
        axes.axhline(panel.limit, color=_LIMIT, linestyle="--", label="rollback boundary")
    if panel.deployed_at is not None:
        (deploy,) = _dates([panel.deployed_at])
        axes.axvline(deploy, color="#2ca02c", linewidth=1.2, label="deploy")
    unit = f" ({panel.unit})" if panel.unit else ""
    axes.set_ylabel(panel.label + unit, fontsize=9)
    axes.set_title(panel.label, fontsize=9, loc="left")
    axes.set_ylim(bottom=0)
    axes.grid(True, alpha=0.3)
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    _format_time_axis(axes)


def _values(
    target: WatchTarget, metric: str, series: StepSeries, through: float, scale: float
) -> Points:
    """Per-step values at each step's end, for the steps complete by ``through``."""
    config = target.watch.metrics[metric]
    count = series.steps_ending_by(through)
    if config.kind == MetricKind.RATIO:
        numerators = series.column(numerator_column(metric))
        denominators = series.column(denominator_column(metric))
        values = [
            n / d * scale if n is not None and d else None
            for n, d in zip(numerators[:count], denominators[:count], strict=False)
        ]
    else:
        values = [v * scale if v is not None else None for v in series.column(metric)[:count]]
    step = series.step_seconds
    return [
        (series.step_start(index) + step, value)
        for index, value in enumerate(values)
        if value is not None
    ]


def _safe_values(target: WatchTarget, metric: str, samples: WatchSamples, scale: float) -> Points:
    """The safe version's per-step values where they belong on the candidate's time axis."""
    baseline, candidate = samples.baseline, samples.candidate
    step = baseline.step_seconds
    ends = baseline.start + len(baseline) * step
    values = _values(target, metric, baseline, ends, scale)
    if samples.baseline_mode == "live":
        # Live samples were placed just before the candidate; they were read beside it.
        shift = candidate.start - baseline.start
        return [(t + shift, v) for t, v in values]
    if candidate.start - ends > step:
        # A lookback gap lies between them: the baseline level line stands for them.
        return []
    return values


def _deploy_shown(target: WatchTarget, candidate: StepSeries) -> float | None:
    deployed_at = target.deployed_at.timestamp()
    # The candidate starts at the first whole step after the deploy unless the lookback cut it.
    return deployed_at if deployed_at >= candidate.start - candidate.step_seconds else None


def _window(evidence: MetricEvidence, evaluated_at: float) -> tuple[float, float] | None:
    if evidence.window_seconds is None:
        return None
    return evaluated_at - evidence.window_seconds, evaluated_at


def _scaled(value: float | None, scale: float) -> float | None:
    return None if value is None else value * scale


def _dates(moments: list[float]) -> list[float]:
    from matplotlib.dates import date2num

    return [float(date2num(datetime.fromtimestamp(m, UTC))) for m in moments]


def _format_time_axis(axes: Axes) -> None:
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

    locator = AutoDateLocator()
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(ConciseDateFormatter(locator))
