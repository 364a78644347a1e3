"""Prometheus answers turned into the detector's per-step samples, for many models at once.

Sample timestamps are aligned to multiples of the step, so every model shares one grid and
one query answers all of them. A range-query point at ``T`` covers ``(T - step, T]``, so it
becomes the step starting at ``T - step``; the step straddling a deploy belongs to neither
version and is left out.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from bot.config.watch import MetricKind, denominator_column, numerator_column
from bot.detection.rules import StepSeries
from bot.watches.queries import (
    MAX_NAMES_IN_SELECTOR,
    ColumnRequest,
    ColumnSamples,
    group_requests,
    run_grouped,
)
from bot.watches.targets import WatchTarget
from integrations.metrics.base import MetricsSource

# A canary baseline counts as live when the safe version has data in at least this share
# of the candidate's steps.
_LIVE_BASELINE_SHARE = 0.5
# Models per grouped query: bounds one answer's memory, and stays within the count the query
# grouping still selects by name (beyond it, a query would select every model).
MODELS_PER_QUERY = MAX_NAMES_IN_SELECTOR


@dataclass(frozen=True)
class WatchSamples:
    """The samples one evaluation of one model judges."""

    baseline: StepSeries
    candidate: StepSeries
    now: float
    baseline_mode: str


def column_requests(target: WatchTarget) -> list[ColumnRequest]:
    """The columns a target's metrics need, one per PromQL template."""
    watch = target.watch
    requests = []
    for name, metric in watch.metrics.items():
        if metric.kind == MetricKind.RATIO:
            parts = [
                (numerator_column(name), metric.numerator or ""),
                (denominator_column(name), metric.denominator or ""),
            ]
            aggregation = "sum"
        else:
            parts = [(name, metric.query or "")]
            aggregation = metric.aggregation
        for column, template in parts:
            requests.append(
                ColumnRequest(
                    model=target.model,
                    metrics_name=target.metrics_name,
                    column=column,
                    template=template,
                    aggregation=aggregation,
                    model_label=watch.model_label,
                    version_label=watch.version_label,
                    step_seconds=watch.step.total_seconds(),
                )
            )
    return requests


def step_end(target: WatchTarget, now: datetime) -> float:
    """The end of the newest step complete at ``now``: what an evaluation then can judge."""
    step = target.watch.step.total_seconds()
    return math.floor(now.timestamp() / step) * step


def read_samples(
    source: MetricsSource, targets: Sequence[WatchTarget], *, now: datetime
) -> dict[str, WatchSamples]:
    """Samples for every target with a baseline version, in one query per template and chunk."""
    result: dict[str, WatchSamples] = {}
    for chunk in read_chunks(source, targets, now=now):
        result.update(chunk)
    return result


def read_chunks(
    source: MetricsSource,
    targets: Sequence[WatchTarget],
    *,
    now: datetime,
    models_per_query: int = MODELS_PER_QUERY,
) -> Iterator[dict[str, WatchSamples]]:
    """Samples chunk by chunk of models, so one answer never holds the whole fleet."""
    by_step: dict[float, list[WatchTarget]] = defaultdict(list)
    for target in targets:
        if target.baseline_version is not None:
            by_step[target.watch.step.total_seconds()].append(target)
    for step, group in by_step.items():
        # Neighbouring deploys share a chunk, so its range reaches back no further than needed.
        group.sort(key=lambda target: target.deployed_at)
        for first in range(0, len(group), models_per_query):
            yield _read_chunk(source, group[first : first + models_per_query], step, now)


def _read_chunk(
    source: MetricsSource, chunk: Sequence[WatchTarget], step: float, now: datetime
) -> dict[str, WatchSamples]:
    end = math.floor(now.timestamp() / step) * step
    first = min(_baseline_start(target, step) for target in chunk)
    requests = [request for target in chunk for request in column_requests(target)]
    samples = run_grouped(
        source,
        group_requests(requests),
        start=datetime.fromtimestamp(first + step, UTC),
        end=datetime.fromtimestamp(end, UTC),
    )
    return {target.model: samples_for(target, samples, end=end) for target in chunk}


def samples_for(target: WatchTarget, samples: ColumnSamples, *, end: float) -> WatchSamples:
    """One target's baseline and candidate series out of a split answer."""
    step = target.watch.step.total_seconds()
    deploy = target.deployed_at.timestamp()
    columns = [request.column for request in column_requests(target)]
    candidate_start = math.ceil(deploy / step) * step
    candidate_grid = _grid(candidate_start, end, step)
    candidate = _series(target, samples, target.candidate_version, columns, candidate_grid, step)
    baseline_version = target.baseline_version or ""
    live = _series(target, samples, baseline_version, columns, candidate_grid, step)
    if not candidate_grid:
        candidate = StepSeries(candidate_start, step, candidate.columns)
    if _use_live(target, live, columns[-1]):
        # The detector reads a baseline as the samples before the candidate's start, so the
        # live samples are placed there; it only uses their rates and spread, not their times.
        baseline = StepSeries(
            candidate.start - len(candidate_grid) * step, step, dict(live.columns)
        )
        return WatchSamples(baseline, candidate, end, "live")
    before_start = _baseline_start(target, step)
    before_grid = _grid(before_start, math.floor(deploy / step) * step, step)
    baseline = _series(target, samples, baseline_version, columns, before_grid, step)
    return WatchSamples(baseline, candidate, end, "before_deploy")


def _baseline_start(target: WatchTarget, step: float) -> float:
    since = target.deployed_at.timestamp() - target.watch.baseline_window.total_seconds()
    return math.ceil(since / step) * step


def _grid(first_step_start: float, end: float, step: float) -> list[float]:
    """Range-query timestamps (step ends) of the steps from ``first_step_start`` to ``end``."""
    count = max(0, round((end - first_step_start) / step))
    return [first_step_start + (index + 1) * step for index in range(count)]


def _series(
    target: WatchTarget,
    samples: ColumnSamples,
    version: str,
    columns: Iterable[str],
    grid: list[float],
    step: float,
) -> StepSeries:
    values = {
        column: [_finite(samples.get((target.model, column, version), {}).get(t)) for t in grid]
        for column in columns
    }
    for name, metric in target.watch.metrics.items():
        if metric.kind == MetricKind.RATIO:
            # Error counters often appear only with the first error: requests without an
            # errors series mean zero errors, while a gap in both stays missing data.
            numerators = values[numerator_column(name)]
            denominators = values[denominator_column(name)]
            values[numerator_column(name)] = [
                0.0 if n is None and d is not None else n
                for n, d in zip(numerators, denominators, strict=True)
            ]
    start = grid[0] - step if grid else 0.0
    return StepSeries(start, step, values)


def _use_live(target: WatchTarget, live: StepSeries, presence_column: str) -> bool:
    mode = target.watch.baseline
    if mode != "auto":
        return mode == "live"
    present = [value for value in live.column(presence_column) if value]
    return len(live) > 0 and len(present) >= _LIVE_BASELINE_SHARE * len(live)


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None
