"""Gather a postmortem's facts from the database (and the metrics source, when there is one)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime

from sqlmodel import Session

from bot.config import RollbotConfig
from bot.incidents import service as incidents
from bot.postmortem import records
from bot.postmortem.evidence import (
    DETECTION_KIND,
    deciding_window_start,
    detection_from_details,
    detections_from_events,
    series_from_detections,
)
from bot.postmortem.facts import (
    ChartMarker,
    DetectionFact,
    EvidenceFact,
    ImpactFact,
    MetricSeries,
    PostmortemFacts,
    VersionsFact,
)
from bot.postmortem.impact import (
    ERROR_RATE,
    METRICS_SOURCE,
    Samples,
    chart_series,
    impact_from_counts,
    impact_from_evidence,
    read_metrics,
    window_around,
)
from bot.postmortem.keytimes import (
    CORRECTION_KIND,
    StageOutcomes,
    corrections,
    duration_facts,
    first_response,
    key_time_facts,
)
from bot.postmortem.narrative import summarize
from bot.postmortem.watched import BASELINE_COUNTS, configured_error_rate, watch_queries
from bot.store.models import ApprovalRequest, Incident, IncidentStatus
from bot.store.types import utcnow
from integrations.metrics.base import MetricsSource


def gather_facts(
    session: Session,
    *,
    incident_id: int,
    metrics: MetricsSource | None = None,
    config: RollbotConfig | None = None,
    now: datetime | None = None,
) -> PostmortemFacts:
    """Everything the postmortem states about the incident; NotFoundError for an unknown one.

    With a metrics source, the model's watched metrics (from ``config``) are read around it.
    """
    incident = incidents.get(session, incident_id=incident_id)
    now = now or utcnow()
    events = records.timeline_events(
        session, incident_id=incident_id, kinds=(DETECTION_KIND, CORRECTION_KIND)
    )
    timeline = records.timeline(session, incident_id=incident_id)
    requests = records.approval_requests(session, incident_id=incident_id)
    approvals = records.approval_facts(session, requests)
    runs = records.run_facts(session, incident_id=incident_id)
    versions = records.versions_fact(session, incident=incident, requests=requests, runs=runs)
    detections = detections_from_events(events) or _proposal_evidence(requests)
    evidence = _deciding(detections)

    series, counts, boundaries, problem = _metric_readings(
        incident, versions, metrics, config, evidence, now
    )
    if not series:
        series = series_from_detections(detections)
    outcomes = StageOutcomes(
        resolved=incident.status == IncidentStatus.RESOLVED,
        approval_statuses=tuple(approval.status for approval in approvals),
        run_statuses=tuple(run.status for run in runs if not run.drill),
        has_metrics=bool(series or detections),
    )
    corrected = corrections(events)
    key_times = key_time_facts(
        incident,
        corrected=corrected,
        estimated_degradation=_estimate_degradation(
            incident, versions, series, detections, corrected="degraded_at" in corrected
        ),
        estimated_acknowledgement=first_response(timeline, after=incident.detected_at),
        outcomes=outcomes,
    )
    times = {fact.key: fact.at for fact in key_times}
    impact = _impact(times, counts, boundaries, problem, now)
    return PostmortemFacts(
        incident_id=incident_id,
        title=incident.title,
        model=incident.model,
        severity=incident.severity,
        status=incident.status,
        opened_at=incident.created_at,
        generated_at=now,
        summary=summarize(
            title=incident.title,
            model=incident.model,
            times=times,
            versions=versions,
            evidence=tuple(evidence.values()),
            approvals=approvals,
            runs=runs,
            impact=impact,
        ),
        key_times=key_times,
        durations=duration_facts(key_times),
        impact=impact,
        versions=versions,
        detections=detections,
        approvals=approvals,
        runs=runs,
        notes=tuple(entry for entry in timeline if entry.pinned),
        timeline=timeline,
        metrics=series,
        markers=_markers(times, versions),
    )


def _proposal_evidence(requests: list[ApprovalRequest]) -> tuple[DetectionFact, ...]:
    # Incidents opened by a proposal alone still carry the evidence shown to approvers.
    found = (detection_from_details(r.created_at, r.evidence) for r in requests)
    return tuple(fact for fact in found if fact is not None)


def _deciding(detections: tuple[DetectionFact, ...]) -> dict[str, EvidenceFact]:
    for detection in detections:
        if detection.state == "degraded":
            return {fact.metric: fact for fact in detection.evidence}
    return {fact.metric: fact for fact in detections[0].evidence} if detections else {}


def _metric_readings(
    incident: Incident,
    versions: VersionsFact,
    metrics: MetricsSource | None,
    config: RollbotConfig | None,
    evidence: Mapping[str, EvidenceFact],
    now: datetime,
) -> tuple[tuple[MetricSeries, ...], Mapping[str, Samples], Mapping[str, EvidenceFact], str | None]:
    """The chart's series, the counts, the boundaries drawn and judged, and any problem."""
    queries = watch_queries(
        config, incident.model, degraded=versions.degraded, safe=versions.restored
    )
    if metrics is None or not queries:
        return (), {}, evidence, None
    window = window_around(
        [versions.deployed_at, incident.degraded_at, incident.detected_at, incident.resolved_at],
        now=now,
    )
    readings = read_metrics(metrics, queries=queries, window=window)
    boundaries = dict(evidence)
    if ERROR_RATE not in boundaries:
        # No watch evaluation recorded a boundary: use the configured one, so the chart and
        # the degradation start still show where the version crossed it.
        configured = configured_error_rate(config, incident.model, readings.columns)
        if configured is not None:
            boundaries[ERROR_RATE] = configured
    columns = {k: v for k, v in readings.columns.items() if k not in BASELINE_COUNTS}
    return chart_series(columns, boundaries), columns, boundaries, readings.problem


def _estimate_degradation(
    incident: Incident,
    versions: VersionsFact,
    series: tuple[MetricSeries, ...],
    detections: tuple[DetectionFact, ...],
    *,
    corrected: bool,
) -> tuple[datetime, str] | None:
    """Where the metrics show the excess beginning, when the incident did not record it.

    An alert or a person records when the trouble was noticed, not when it began: without a
    watch's evaluation (and unless a person corrected it) the metrics' earlier start wins.
    """
    recorded = incident.degraded_at
    if corrected or (recorded is not None and detections):
        return None
    end = incident.detected_at or incident.created_at
    measured = [s for s in series if s.source == METRICS_SOURCE]
    starts = [start for s in measured if (start := _breach_start(s, end)) is not None]
    if versions.deployed_at is not None:
        starts = [max(start, versions.deployed_at) for start in starts]
    if starts and (recorded is None or min(starts) < recorded):
        basis = "estimated from the metrics: where the degraded version crossed its boundary"
        if recorded is not None:
            basis += f" (the incident recorded {recorded:%H:%M:%S} UTC, when it was noticed)"
        return min(starts), basis
    if recorded is not None:
        return None
    start = deciding_window_start(detections)
    if start is None:
        return None
    if versions.deployed_at is not None:
        start = max(start, versions.deployed_at)
    return start, "estimated from the metrics: the start of the window that showed the excess"


def _breach_start(series: MetricSeries, end: datetime) -> datetime | None:
    start: datetime | None = None
    for point in series.points:
        if point.at > end:
            break
        if point.limit is None or point.baseline is None:
            return None
        higher_is_worse = point.limit >= point.baseline
        breached = point.value > point.limit if higher_is_worse else point.value < point.limit
        start = (start or point.at) if breached else None
    return start


def _impact(
    times: Mapping[str, datetime | None],
    counts: Mapping[str, list[tuple[float, float]]],
    evidence: Mapping[str, EvidenceFact],
    problem: str | None,
    now: datetime,
) -> ImpactFact:
    start = times.get("degraded_at") or times.get("detected_at")
    end = times.get("mitigated_at") or times.get("resolved_at")
    ongoing = end is None
    end = end or now
    if start is not None and end < start:
        end, ongoing = start, False
    rate = evidence.get("error_rate")
    counted = impact_from_counts(
        counts,
        start=start,
        end=end,
        ongoing=ongoing,
        baseline_error_rate=rate.baseline_value if rate else None,
    )
    impact = counted or impact_from_evidence(
        evidence, start=start, end=end, ongoing=ongoing, problem=problem
    )
    if times.get("degraded_at") is None and start is not None:
        note = "the window starts at detection because the degradation start is not known"
        impact = replace(impact, basis=f"{impact.basis}; {note}")
    return impact


def _markers(
    times: Mapping[str, datetime | None], versions: VersionsFact
) -> tuple[ChartMarker, ...]:
    moments = [
        (f"deploy of {versions.degraded}" if versions.degraded else "deploy", versions.deployed_at),
        ("detection", times.get("detected_at")),
        ("approval", times.get("approved_at")),
        ("mitigation", times.get("mitigated_at")),
    ]
    return tuple(ChartMarker(label, at) for label, at in moments if at is not None)
