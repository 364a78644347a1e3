"""Prometheus answers turned into the detector's per-step samples, for many models at once.

Sample timestamps are aligned to multiples of the step, so every model shares one grid and
one query answers all of them. A range-query point at ``T`` covers ``(T - step, T]``, so it
becomes the step starting at ``T - step``; the step straddling a deploy belongs to neither
version and is left out. Which ranges are read is :mod:`bot.watches.ranges`' business.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from bot.config.watch import MetricKind, denominator_column, numerator_column
from bot.detection.rules import StepSeries
from bot.watches.queries import (
    MAX_NAMES_IN_SELECTOR,
    ColumnRequest,
    ColumnSamples,
    group_requests,
    run_grouped,
    versions_by_model,
)
from bot.watches.ranges import ChunkPlan, ReadWindows, plan_chunks
from bot.watches.targets import WatchTarget
from integrations.errors import IntegrationError, InvalidRequest
from integrations.metrics.base import MetricsSource

log = logging.getLogger(__name__)

# A canary baseline counts as live when the safe version has data in at least this share
# of the candidate's steps.
_LIVE_BASELINE_SHARE = 0.5
# Models per grouped query: as many as the query grouping still selects by name (beyond it, a
# query would select every model); ranges.POINTS_PER_CHUNK bounds one answer's memory.
MODELS_PER_QUERY = MAX_NAMES_IN_SELECTOR


@dataclass(frozen=True)
class WatchSamples:
    """The samples one evaluation of one model judges."""

    baseline: StepSeries
    candidate: StepSeries
    now: float
    baseline_mode: str
    # Every version Prometheus answered for this model, to explain a version it lacks.
    versions_seen: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ChunkReading:
    """One chunk's samples by model, or the error that left all of them unread; models whose
    queries Prometheus refused are in ``refused`` with the reason, not in ``samples``."""

    targets: tuple[WatchTarget, ...]
    samples: dict[str, WatchSamples]
    error: IntegrationError | None = None
    refused: dict[str, IntegrationError] = field(default_factory=dict)


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


def read_samples(
    source: MetricsSource, targets: Sequence[WatchTarget], *, now: datetime
) -> dict[str, WatchSamples]:
    """Samples for every target with a baseline version; the first unreadable chunk or
    refused query raises."""
    result: dict[str, WatchSamples] = {}
    for reading in read_chunks(source, targets, now=now):
        if reading.error is not None:
            raise reading.error
        if reading.refused:
            raise next(iter(reading.refused.values()))
        result.update(reading.samples)
    return result


def read_chunks(
    source: MetricsSource,
    targets: Sequence[WatchTarget],
    *,
    now: datetime,
    models_per_query: int = MODELS_PER_QUERY,
) -> Iterator[ChunkReading]:
    """Samples chunk by chunk of models, so one answer never holds the whole fleet.

    A chunk whose queries fail is yielded with the error, and the next chunks are still read;
    the caller tells people (see :mod:`bot.watches.troubles`).
    """
    for plan in plan_chunks(targets, now=now, models_per_query=models_per_query):
        refused: dict[str, InvalidRequest] = {}
        try:
            samples = _read_chunk(source, plan, refused)
        except IntegrationError as exc:
            yield ChunkReading(plan.targets, {}, exc)
            continue
        yield ChunkReading(plan.targets, samples, refused=dict(refused))


def _read_chunk(
    source: MetricsSource, plan: ChunkPlan, refused: dict[str, InvalidRequest]
) -> dict[str, WatchSamples]:
    requests = [request for target in plan.targets for request in column_requests(target)]
    queries = group_requests(requests)
    samples: ColumnSamples = defaultdict(dict)
    for steps in plan.ranges:
        answer = run_grouped(
            source,
            queries,
            start=datetime.fromtimestamp(steps.start + plan.step, UTC),
            end=datetime.fromtimestamp(steps.end, UTC),
            refused=refused,
        )
        # Ranges may overlap; a point read twice has the same value either time.
        for key, points in answer.items():
            samples[key].update(points)
    seen = versions_by_model(samples)
    return {
        target.model: samples_for(target, samples, windows, seen.get(target.model, set()))
        for target, windows in zip(plan.targets, plan.windows, strict=True)
        if target.model not in refused
    }


def samples_for(
    target: WatchTarget,
    samples: ColumnSamples,
    windows: ReadWindows,
    versions_seen: Iterable[str] = (),
) -> WatchSamples:
    """One target's baseline and candidate series out of a split answer."""
    found = _samples_for(target, samples, windows)
    return replace(found, versions_seen=frozenset(versions_seen))


def _samples_for(target: WatchTarget, samples: ColumnSamples, windows: ReadWindows) -> WatchSamples:
    step, end = windows.step, windows.end
    columns = [request.column for request in column_requests(target)]
    candidate_grid = _grid(windows.candidate_start, end, step)
    candidate = _series(target, samples, target.candidate_version, columns, candidate_grid, step)
    baseline_version = target.baseline_version or ""
    live = _series(target, samples, baseline_version, columns, candidate_grid, step)
    if not candidate_grid:
        candidate = StepSeries(windows.candidate_start, step, candidate.columns)
    if _use_live(target, live, columns[-1]):
        # The detector reads a baseline as the samples before the candidate's start, so the
        # live samples are placed there; it only uses their rates and spread, not their times.
        baseline = StepSeries(
            candidate.start - len(candidate_grid) * step, step, dict(live.columns)
        )
        return WatchSamples(baseline, candidate, end, "live")
    # Before a lookback gap the detector still takes every baseline sample: it counts the
    # samples complete by the candidate's start, and these all are.
    before_grid = _grid(windows.baseline_start, windows.baseline_end, step)
    baseline = _series(target, samples, baseline_version, columns, before_grid, step)
    if not before_grid:
        baseline = StepSeries(windows.baseline_start, step, baseline.columns)
    return WatchSamples(baseline, candidate, end, "before_deploy")


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
    if target.baseline_version == target.candidate_version:
        return False  # a restored version judged against its own past: never live
    mode = target.watch.baseline
    if mode != "auto":
        return mode == "live"
    present = [value for value in live.column(presence_column) if value]
    return len(live) > 0 and len(present) >= _LIVE_BASELINE_SHARE * len(live)


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None
