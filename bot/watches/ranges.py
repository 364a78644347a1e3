"""The time ranges a chunk of models is read over, so no query exceeds what Prometheus serves.

A candidate is read from its deploy but never further back than its watch's ``lookback``;
the safe version's ``baseline_window`` before the deploy is read as a range of its own when
a gap lies between it and the candidate's. Models are chunked so every range stays within
Prometheus's points per series, and a chunk costs the same queries however many models it
holds: one range per template, or two (baseline, candidate) when they are far apart.

Bounds are step starts on multiples of the step (unix seconds); a range-query point at ``T``
covers ``(T - step, T]``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from bot.watches.targets import WatchTarget

# Prometheus refuses a range query whose (end - start) / step exceeds this.
MAX_POINTS_PER_SERIES = 11_000
# Points one chunk's answer may hold across its models: bounds the reader's memory when
# neighbouring deploys are days apart (at 1m steps, 1,000 models over about 33 hours).
POINTS_PER_CHUNK = 2_000_000


@dataclass(frozen=True)
class ReadWindows:
    """One target's baseline and candidate step ranges."""

    step: float
    baseline_start: float
    baseline_end: float
    candidate_start: float
    end: float


@dataclass(frozen=True)
class StepRange:
    """Steps from ``start`` to ``end``; queried as the range (start + step, end]."""

    start: float
    end: float


@dataclass(frozen=True)
class ChunkPlan:
    """Models read together and the ranges their grouped queries cover."""

    step: float
    targets: tuple[WatchTarget, ...]
    windows: tuple[ReadWindows, ...]
    ranges: tuple[StepRange, ...]


def step_end(target: WatchTarget, now: datetime) -> float:
    """The end of the newest step complete at ``now``: what an evaluation then can judge."""
    step = target.watch.step.total_seconds()
    return math.floor(now.timestamp() / step) * step


def read_windows(target: WatchTarget, now: datetime) -> ReadWindows:
    """Where one target's baseline and candidate steps lie, each capped to one query's points."""
    watch = target.watch
    step = watch.step.total_seconds()
    end = step_end(target, now)
    deploy = target.deployed_at.timestamp()
    most = MAX_POINTS_PER_SERIES * step
    lookback = min(math.ceil(watch.lookback.total_seconds() / step) * step, most)
    candidate_start = max(math.ceil(deploy / step) * step, end - lookback)
    until = (target.baseline_until or target.deployed_at).timestamp()
    baseline_end = math.floor(until / step) * step
    since = math.ceil((until - watch.baseline_window.total_seconds()) / step) * step
    # A baseline window longer than one query allows keeps its newest part.
    baseline_start = max(since, baseline_end - most)
    return ReadWindows(step, baseline_start, baseline_end, candidate_start, end)


def plan_chunks(
    targets: Sequence[WatchTarget], *, now: datetime, models_per_query: int
) -> Iterator[ChunkPlan]:
    """Chunks of targets with a baseline version: neighbouring deploys share a chunk."""
    by_step: dict[float, list[tuple[WatchTarget, ReadWindows]]] = defaultdict(list)
    for target in targets:
        if target.baseline_version is not None:
            windows = read_windows(target, now)
            by_step[windows.step].append((target, windows))
    for step, group in by_step.items():
        group.sort(key=lambda pair: pair[1].baseline_start)
        chunk = _Chunk(step)
        for target, windows in group:
            if chunk.targets and not chunk.fits(windows, models_per_query):
                yield chunk.plan()
                chunk = _Chunk(step)
            chunk.add(target, windows)
        if chunk.targets:
            yield chunk.plan()


class _Chunk:
    """Targets gathered for one chunk, with the span their baselines cover so far."""

    def __init__(self, step: float) -> None:
        self.step = step
        self.targets: list[WatchTarget] = []
        self.windows: list[ReadWindows] = []
        self.baseline = StepRange(math.inf, -math.inf)

    def fits(self, joining: ReadWindows, models_per_query: int) -> bool:
        """Whether ``joining`` keeps the chunk within its models, points per series and memory."""
        if len(self.targets) >= models_per_query:
            return False
        first = min(self.baseline.start, joining.baseline_start)
        last = max(self.baseline.end, joining.baseline_end)
        span = (last - first) / self.step
        return span <= MAX_POINTS_PER_SERIES and (len(self.targets) + 1) * span <= POINTS_PER_CHUNK

    def add(self, target: WatchTarget, windows: ReadWindows) -> None:
        """Take one more target."""
        self.targets.append(target)
        self.windows.append(windows)
        self.baseline = StepRange(
            min(self.baseline.start, windows.baseline_start),
            max(self.baseline.end, windows.baseline_end),
        )

    def plan(self) -> ChunkPlan:
        """The ranges to read: one when baseline and candidate meet, else one each."""
        step, baseline = self.step, self.baseline
        candidate = StepRange(min(w.candidate_start for w in self.windows), self.windows[0].end)
        joined = StepRange(baseline.start, candidate.end)
        # The step straddling a deploy lies between them and is cheaper read than split on.
        contiguous = baseline.end + step >= candidate.start
        if contiguous and (joined.end - joined.start) / step <= MAX_POINTS_PER_SERIES:
            ranges: tuple[StepRange, ...] = (joined,)
        else:
            ranges = tuple(r for r in (baseline, candidate) if r.end > r.start)
        return ChunkPlan(step, tuple(self.targets), tuple(self.windows), ranges)
