"""What a watch compares: the metrics, their rollback boundaries, and the sampled series."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

ERROR_RATE = "error_rate"
REQUESTS_SERIES = "requests"
ERRORS_SERIES = "errors"


class Direction(StrEnum):
    """Which way a gauge gets worse."""

    HIGHER_IS_WORSE = "higher_is_worse"
    LOWER_IS_WORSE = "lower_is_worse"


@dataclass(frozen=True)
class Boundary:
    """A rollback boundary: relative to the baseline version and/or an absolute limit.

    Higher-is-worse metrics use the ``max_*`` fields, lower-is-worse gauges the ``min_*`` ones.
    """

    max_ratio_to_baseline: float | None = None
    max_value: float | None = None
    min_ratio_to_baseline: float | None = None
    min_value: float | None = None

    def is_empty(self) -> bool:
        """True when the boundary sets no limit at all."""
        return all(
            limit is None
            for limit in (
                self.max_ratio_to_baseline,
                self.max_value,
                self.min_ratio_to_baseline,
                self.min_value,
            )
        )


@dataclass(frozen=True)
class RatioRule:
    """A rate given as numerator / denominator counts per step, e.g. errors / requests."""

    name: str
    boundary: Boundary
    numerator: str = ERRORS_SERIES
    denominator: str = REQUESTS_SERIES
    label: str = "error rate"


@dataclass(frozen=True)
class GaugeRule:
    """A value sampled per step, e.g. p99 latency, mean confidence or a drift score."""

    name: str
    boundary: Boundary
    series: str
    direction: Direction = Direction.HIGHER_IS_WORSE
    label: str = ""
    unit: str = ""

    @property
    def display_name(self) -> str:
        """How the metric is named in explanations."""
        return self.label or self.name.replace("_", " ")


MetricRule = RatioRule | GaugeRule


@dataclass(frozen=True)
class StepSeries:
    """Per-step samples of several series sharing one clock; ``None`` means no data."""

    start: float
    step_seconds: float
    columns: Mapping[str, Sequence[float | None]] = field(default_factory=dict)

    def __len__(self) -> int:
        return max((len(column) for column in self.columns.values()), default=0)

    def column(self, name: str) -> Sequence[float | None]:
        """One series, or an empty one when it was not recorded."""
        return self.columns.get(name, ())

    def steps_ending_by(self, moment: float) -> int:
        """How many leading samples are complete at ``moment`` (causality boundary)."""
        if moment < self.start:
            return 0
        complete = int((moment - self.start) // self.step_seconds)
        return min(len(self), complete)

    def step_start(self, index: int) -> float:
        """Unix seconds at which sample ``index`` begins."""
        return self.start + index * self.step_seconds


def _boundary_from_mapping(raw: Mapping[str, float]) -> Boundary:
    def limit(key: str) -> float | None:
        value = raw.get(key)
        return None if value is None else float(value)

    return Boundary(
        max_ratio_to_baseline=limit("max_ratio_to_baseline"),
        max_value=limit("max_value"),
        min_ratio_to_baseline=limit("min_ratio_to_baseline"),
        min_value=limit("min_value"),
    )


def rules_from_boundaries(boundaries: Mapping[str, Mapping[str, float]]) -> list[MetricRule]:
    """Build rules from a watch policy's boundaries: ``error_rate`` is errors / requests.

    Every other key names a gauge series of the same name; a boundary with ``min_*`` limits
    makes that gauge lower-is-worse (confidence), otherwise higher-is-worse (latency, drift).
    """
    rules: list[MetricRule] = []
    for name, raw in boundaries.items():
        boundary = _boundary_from_mapping(raw)
        if name == ERROR_RATE:
            rules.append(RatioRule(name=name, boundary=boundary))
            continue
        lower_is_worse = (
            boundary.min_ratio_to_baseline is not None or boundary.min_value is not None
        )
        direction = Direction.LOWER_IS_WORSE if lower_is_worse else Direction.HIGHER_IS_WORSE
        unit = "s" if name.endswith("_seconds") else ""
        label = name.removesuffix("_seconds").replace("_", " ")
        if label.startswith("latency "):
            label = label.removeprefix("latency ") + " latency"
        rules.append(
            GaugeRule(
                name=name,
                boundary=boundary,
                series=name,
                direction=direction,
                label=label,
                unit=unit,
            )
        )
    return rules
