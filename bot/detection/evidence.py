"""The detector's verdict and the numbers behind it, phrased so a person can check them."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class DetectionState(StrEnum):
    """How the candidate version looks against its rollback boundaries."""

    HEALTHY = "healthy"
    SUSPECT = "suspect"
    DEGRADED = "degraded"
    INCONCLUSIVE = "inconclusive"


# When metrics disagree the overall state is the most alarming one; inconclusive outranks
# healthy because "we cannot tell" must not be reported as "fine".
_SEVERITY = {
    DetectionState.HEALTHY: 0,
    DetectionState.INCONCLUSIVE: 1,
    DetectionState.SUSPECT: 2,
    DetectionState.DEGRADED: 3,
}


def most_severe(states: list[DetectionState]) -> DetectionState:
    """The most alarming of several states; inconclusive when there are none."""
    if not states:
        return DetectionState.INCONCLUSIVE
    return max(states, key=lambda state: _SEVERITY[state])


def format_duration(seconds: float) -> str:
    """Seconds as a short human duration: 45s, 6m, 1h30m."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, rest = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m" if rest == 0 else f"{minutes}m{rest:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h" if minutes == 0 else f"{hours}h{minutes:02d}m"


def format_chance(p_value: float) -> str:
    """A p-value as the odds a person reads: 'about 1 in 2,000'."""
    if p_value <= 1e-6:
        return "under 1 in 1,000,000"
    if p_value >= 0.5:
        return "about even or likelier"
    return f"about 1 in {round(1 / p_value):,}"


@dataclass(frozen=True)
class MetricEvidence:
    """What one metric showed in the window that decided its state."""

    metric: str
    label: str
    state: DetectionState
    summary: str
    baseline_value: float | None = None
    candidate_value: float | None = None
    ratio_to_baseline: float | None = None
    boundary: str | None = None
    limit_value: float | None = None
    window_seconds: float | None = None
    sample_count: float | None = None
    event_count: float | None = None
    p_value: float | None = None
    blip_robust: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain values for JSON and storage."""
        return {
            "metric": self.metric,
            "label": self.label,
            "state": self.state.value,
            "summary": self.summary,
            "baseline_value": self.baseline_value,
            "candidate_value": self.candidate_value,
            "ratio_to_baseline": self.ratio_to_baseline,
            "boundary": self.boundary,
            "limit_value": self.limit_value,
            "window_seconds": self.window_seconds,
            "sample_count": self.sample_count,
            "event_count": self.event_count,
            "p_value": self.p_value,
            "blip_robust": self.blip_robust,
        }


@dataclass(frozen=True)
class Decision:
    """The detector's verdict at one evaluation time, with per-metric evidence."""

    state: DetectionState
    evaluated_at: float
    metrics: tuple[MetricEvidence, ...] = field(default_factory=tuple)
    # What the watch knows beyond the numbers (no earlier version, versions it cannot find).
    note: str = ""

    @property
    def deciding_metrics(self) -> tuple[MetricEvidence, ...]:
        """The metrics whose state is the overall state."""
        return tuple(evidence for evidence in self.metrics if evidence.state == self.state)

    def explain(self) -> str:
        """The verdict in plain words, one sentence per metric, deciding metrics first."""
        if not self.metrics:
            return f"{self.note or 'no metrics to compare'} → {self.state.value}"
        deciding = self.deciding_metrics
        others = tuple(evidence for evidence in self.metrics if evidence.state != self.state)
        sentences = [
            f"{evidence.summary} → {evidence.state.value}" for evidence in deciding + others
        ]
        return "; ".join([self.note, *sentences] if self.note else sentences)

    def to_dict(self) -> dict[str, Any]:
        """Plain values for JSON and storage."""
        return {
            "state": self.state.value,
            "evaluated_at": self.evaluated_at,
            "explanation": self.explain(),
            "metrics": [evidence.to_dict() for evidence in self.metrics],
        }
