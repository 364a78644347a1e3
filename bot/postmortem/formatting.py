"""How times, durations and numbers read in a postmortem (also the templates' filters)."""

from __future__ import annotations

from datetime import UTC, datetime

NOT_REACHED = "not reached"


def when(moment: datetime | None, missing: str = NOT_REACHED) -> str:
    """A moment as `2026-03-01 10:02:05 UTC`."""
    if moment is None:
        return missing
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def clock(moment: datetime | None, missing: str = NOT_REACHED) -> str:
    """A moment as `10:02 UTC`, for sentences."""
    if moment is None:
        return missing
    return moment.astimezone(UTC).strftime("%H:%M UTC")


def duration(seconds: float | None, missing: str = NOT_REACHED) -> str:
    """Seconds as `45s`, `6m 05s`, `1h 30m`, `2d 3h`."""
    if seconds is None:
        return missing
    total = round(seconds)
    if total < 60:
        return f"{total}s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes}m" if secs == 0 else f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h" if minutes == 0 else f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h"


def metric_value(value: float | None, unit: str = "", missing: str = "not recorded") -> str:
    """A metric reading: ratios as percentages, seconds with their unit."""
    if value is None:
        return missing
    if unit == "ratio":
        return f"{value * 100:.2f}%"
    if unit == "s":
        return f"{value:.3g} s"
    return f"{value:.4g}"


def count(value: float | None, missing: str = "not known") -> str:
    """A count of requests or errors, rounded as the estimate it is."""
    if value is None:
        return missing
    return f"{round(value):,}"


def unit_of(metric: str) -> str:
    """The display unit of a watched metric, from its name."""
    if metric == "error_rate":
        return "ratio"
    return "s" if metric.endswith("_seconds") else ""
