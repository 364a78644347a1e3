"""What a postmortem states, as plain values: gathered once, rendered many ways."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

# The key times in the order an incident reaches them, with the words a reader sees.
KEY_TIME_LABELS: dict[str, str] = {
    "degraded_at": "Degradation start",
    "detected_at": "Detection",
    "acknowledged_at": "Acknowledgement",
    "approved_at": "Approval",
    "mitigated_at": "Mitigation (traffic back on the safe version)",
    "verified_at": "Verification",
    "resolved_at": "Resolution",
}


@dataclass(frozen=True)
class KeyTimeFact:
    """One key time, where it came from, and whether a person corrected it."""

    key: str
    label: str
    at: datetime | None
    basis: str
    missing: str = "not reached"
    correction: str | None = None


@dataclass(frozen=True)
class DurationFact:
    """The time between two key times; ``seconds`` is None when either was not reached."""

    label: str
    start_key: str
    end_key: str
    seconds: float | None
    why_missing: str | None = None


@dataclass(frozen=True)
class MetricPoint:
    """One metric reading of the degraded version, with the numbers it was judged against."""

    at: datetime
    value: float
    baseline: float | None = None
    limit: float | None = None


@dataclass(frozen=True)
class MetricSeries:
    """A watched metric around the incident, for the chart."""

    name: str
    label: str
    unit: str
    points: tuple[MetricPoint, ...]
    source: str


@dataclass(frozen=True)
class EvidenceFact:
    """One metric's numbers at the evaluation that decided the incident."""

    metric: str
    label: str
    state: str
    summary: str
    baseline_value: float | None
    candidate_value: float | None
    limit_value: float | None
    window_seconds: float | None = None
    sample_count: float | None = None
    event_count: float | None = None


@dataclass(frozen=True)
class DetectionFact:
    """One evaluation of the watch, as the system saw it then."""

    at: datetime
    state: str
    explanation: str
    evidence: tuple[EvidenceFact, ...]


@dataclass(frozen=True)
class ImpactFact:
    """How long and how much; every number says where it came from."""

    start: datetime | None
    end: datetime | None
    ongoing: bool
    seconds: float | None
    requests: float | None
    errors: float | None
    excess_errors: float | None
    basis: str


@dataclass(frozen=True)
class ComponentChange:
    """A model or linked component moved from one version to another during the incident."""

    component: str
    from_version: str | None
    to_version: str
    at: datetime
    reason: str


@dataclass(frozen=True)
class VersionsFact:
    """The degraded version, the one restored, and the linked components rolled back."""

    degraded: str | None
    restored: str | None
    deployed_at: datetime | None
    changes: tuple[ComponentChange, ...]


@dataclass(frozen=True)
class DecisionFact:
    """One person's approve or reject."""

    approver: str
    decision: str
    at: datetime
    comment: str | None


@dataclass(frozen=True)
class ApprovalFact:
    """A proposed rollback and what became of it."""

    request_id: int
    requested_by: str
    requested_at: datetime
    from_version: str | None
    to_version: str
    runbook: str
    status: str
    decided_at: datetime | None
    reason: str | None
    decisions: tuple[DecisionFact, ...]


@dataclass(frozen=True)
class StepFact:
    """One runbook step: what it did, how long it took, how it ended."""

    phase: str
    position: int
    name: str
    action: str
    state: str
    attempts: int
    started_at: datetime | None
    finished_at: datetime | None
    seconds: float | None
    error: str | None


@dataclass(frozen=True)
class RunFact:
    """One runbook run and its steps."""

    run_id: int
    runbook: str
    from_version: str | None
    to_version: str
    status: str
    drill: bool
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None
    steps: tuple[StepFact, ...]


@dataclass(frozen=True)
class TimelineEntry:
    """One timeline event as the postmortem lists it."""

    at: datetime
    kind: str
    source: str
    actor: str | None
    summary: str
    pinned: bool


@dataclass(frozen=True)
class ChartMarker:
    """A vertical line on the chart: deploy, detection, approval, mitigation."""

    label: str
    at: datetime


@dataclass(frozen=True)
class PostmortemFacts:
    """Everything the postmortem says about one incident."""

    incident_id: int
    title: str
    model: str | None
    severity: str
    status: str
    opened_at: datetime
    generated_at: datetime
    summary: str
    key_times: tuple[KeyTimeFact, ...]
    durations: tuple[DurationFact, ...]
    impact: ImpactFact
    versions: VersionsFact
    detections: tuple[DetectionFact, ...]
    approvals: tuple[ApprovalFact, ...]
    runs: tuple[RunFact, ...]
    notes: tuple[TimelineEntry, ...]
    timeline: tuple[TimelineEntry, ...]
    metrics: tuple[MetricSeries, ...]
    markers: tuple[ChartMarker, ...]

    def key_time(self, key: str) -> datetime | None:
        """The value of one key time."""
        for fact in self.key_times:
            if fact.key == key:
                return fact.at
        return None
