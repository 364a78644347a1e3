"""Detector settings and the candidate windows each evaluation looks at."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class DetectorSettings:
    """Evidence thresholds; the defaults are what the benchmark in docs/benchmarks.md uses."""

    # Chance-of-noise a sustained excess must beat to call a version degraded. It is small
    # because a watch looks many times a day at several windows, and a false rollback at
    # 3 a.m. costs more than a minute of waiting.
    significance: float = 1e-3
    # Weaker evidence that is worth showing a person but never proposes anything.
    suspect_significance: float = 0.01
    # Healthy means: the chance the candidate is actually beyond its boundary is below this.
    healthy_doubt: float = 0.1
    # Windows ending now, in multiples of the sustain time, so strong shifts are caught fast
    # and weak ones by accumulating evidence; everything since deploy is always one window.
    window_sustain_multiples: tuple[float, ...] = (1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0)
    # A median over fewer gauge samples than this says too little to act on.
    min_gauge_samples: int = 6


DEFAULT_SETTINGS = DetectorSettings()


@dataclass(frozen=True)
class Window:
    """Candidate steps [first, end) ending at the evaluation time."""

    first: int
    end: int

    @property
    def length(self) -> int:
        """Number of steps in the window."""
        return self.end - self.first


def sustain_steps(min_sustain_seconds: float, step_seconds: float) -> int:
    """How many steps a blip may last at most."""
    return max(1, math.ceil(min_sustain_seconds / step_seconds - 1e-9))


def candidate_windows(
    available_steps: int, blip_steps: int, settings: DetectorSettings
) -> list[Window]:
    """Windows longer than a blip, shortest first, ending at the newest complete step."""
    lengths = {
        math.ceil(multiple * blip_steps)
        for multiple in settings.window_sustain_multiples
        if math.ceil(multiple * blip_steps) < available_steps
    }
    if available_steps > blip_steps:
        lengths.add(available_steps)
    return [
        Window(first=available_steps - length, end=available_steps)
        for length in sorted(lengths)
        if length > blip_steps
    ]


def worst_stretch_start(excess: Sequence[float], window: Window, blip_steps: int) -> int:
    """Start of the blip-length stretch inside ``window`` with the largest summed excess."""
    running = sum(excess[window.first : window.first + blip_steps])
    best, best_start = running, window.first
    for start in range(window.first + 1, window.end - blip_steps + 1):
        running += excess[start + blip_steps - 1] - excess[start - 1]
        if running > best:
            best, best_start = running, start
    return best_start


def remainder_segments(
    present: Sequence[bool], window: Window, set_aside_start: int, blip_steps: int
) -> list[list[int]]:
    """The window's steps with data outside the set-aside stretch, in blip-length segments.

    Always at least two (earlier and later), so a sustained excess must show in both.
    """
    kept = [
        index
        for index in range(window.first, window.end)
        if present[index] and not set_aside_start <= index < set_aside_start + blip_steps
    ]
    count = max(2, (window.length - blip_steps) // blip_steps)
    bounds = [round(i * len(kept) / count) for i in range(count + 1)]
    return [kept[bounds[i] : bounds[i + 1]] for i in range(count)]


def most_segments(flags: Sequence[bool]) -> bool:
    """True when more than half the segments agree (all of them when there are two)."""
    return sum(flags) * 2 > len(flags) and (len(flags) > 2 or all(flags))
