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
    # Chance-of-noise the rest of the window, with the worst sustain-length stretch set aside,
    # must beat as well: it answers "could one blip explain this?", and the whole window has
    # already ruled out plain noise at ``significance``, so it need not be as strict.
    blip_significance: float = 1e-2
    # Weaker evidence that is worth showing a person but never proposes anything.
    suspect_significance: float = 0.01
    # Healthy means: the chance the candidate is actually beyond its boundary is below this.
    healthy_doubt: float = 0.1
    # Windows ending now, in multiples of the sustain time, so strong shifts are caught fast
    # and weak ones by accumulating evidence; everything since deploy is always one window.
    window_sustain_multiples: tuple[float, ...] = (
        4 / 3,
        1.5,
        2.0,
        3.0,
        4.0,
        6.0,
        8.0,
        12.0,
        16.0,
        24.0,
    )
    # A sustained excess leaves no healthy gap, a cluster of blips does: every stretch this
    # fraction of the sustain time long is checked, so a 2-minute gap always holds one.
    part_sustain_fraction: float = 1 / 3
    # Windows shorter than this many parts may hold no healthy-looking stretch; longer ones
    # one part's worth per this many parts, as noise makes some parts of a real excess at
    # low traffic look healthy, while a cluster of blips leaves a much larger share.
    parts_per_allowed_gap: int = 8
    # A long window whose parts spread around its rate more than noise allows at this chance
    # is uneven, as a cluster of blips is, and gets no allowance for healthy-looking parts.
    evenness_significance: float = 0.05
    # A median over fewer gauge samples than this, or over less than this share of the
    # sustain time, says too little to act on.
    min_gauge_samples: int = 3
    min_gauge_sustain_fraction: float = 0.5
    # A blip shorter than the sustain time can touch one step more than it fills. With at
    # least this many steps per sustain time that step holds little of it and the tests of
    # the rest absorb it; with coarser steps (a 1-minute step against 3 minutes) it is set
    # aside as well.
    fine_steps_per_sustain: int = 12


DEFAULT_SETTINGS = DetectorSettings()


def is_sustained(
    *,
    whole_p_value: float,
    rest_p_value: float,
    no_gap: bool,
    gaps_visible: bool,
    settings: DetectorSettings,
) -> bool:
    """Beyond noise over the whole window, beyond a blip without its worst stretch, no gap.

    The rest only gets the laxer ``blip_significance`` where the traffic is high enough to
    see the healthy gaps of a blip cluster; elsewhere it must beat ``significance`` too.
    """
    rest_level = settings.blip_significance if gaps_visible else settings.significance
    return no_gap and whole_p_value <= settings.significance and rest_p_value <= rest_level


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


def set_aside_steps(blip_steps: int, settings: DetectorSettings) -> int:
    """How many steps the worst blip-length stretch covers (see ``fine_steps_per_sustain``)."""
    return blip_steps + (1 if blip_steps < settings.fine_steps_per_sustain else 0)


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
    present: Sequence[bool], window: Window, set_aside: range, blip_steps: int
) -> list[list[int]]:
    """The window's steps with data outside the set-aside stretch, in blip-length segments.

    Always at least two (earlier and later), so a sustained excess must show in both.
    """
    kept = [
        index
        for index in range(window.first, window.end)
        if present[index] and index not in set_aside
    ]
    count = max(2, (window.length - blip_steps) // blip_steps)
    bounds = [round(i * len(kept) / count) for i in range(count + 1)]
    return [kept[bounds[i] : bounds[i + 1]] for i in range(count)]


def most_segments(flags: Sequence[bool]) -> bool:
    """True when more than half the segments agree (all of them when there are two)."""
    return sum(flags) * 2 > len(flags) and (len(flags) > 2 or all(flags))


def part_steps(blip_steps: int, settings: DetectorSettings) -> int:
    """Steps per part when looking for healthy gaps inside a window."""
    return max(1, round(blip_steps * settings.part_sustain_fraction))


def stretches(present: Sequence[bool], window: Window, length: int) -> list[list[int]]:
    """Every run of ``length`` consecutive steps inside the window, as its steps with data."""
    return [
        [index for index in range(start, start + length) if present[index]]
        for start in range(window.first, window.end - length + 1)
    ]


def no_healthy_gap(quiet: Sequence[bool], steps_per_part: int, settings: DetectorSettings) -> bool:
    """True when too few stretches look healthy for the excess to be a cluster of blips.

    ``quiet`` flags every part-length stretch of the window (one per starting step). Short
    windows may hold none; long ones one part's worth per ``parts_per_allowed_gap`` parts,
    since noise alone makes some parts of a real excess look healthy at low traffic.
    """
    parts = (len(quiet) + steps_per_part - 1) // steps_per_part
    allowed = steps_per_part * (parts // settings.parts_per_allowed_gap)
    return sum(quiet) <= allowed
