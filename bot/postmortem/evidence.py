"""Read the detection evidence stored on the timeline and on approval requests.

The detector stores a ``Decision.to_dict()`` (state, explanation, metrics); callers may wrap
it (``{"decision": {...}}``) or add their own keys, so this reads it leniently and skips
what it does not recognise rather than failing a postmortem over it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from bot.postmortem.facts import DetectionFact, EvidenceFact, MetricPoint, MetricSeries
from bot.postmortem.formatting import unit_of
from bot.store.models import TimelineEvent

DETECTION_KIND = "detection.decision"


def decision_payload(details: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The decision inside an event's or a request's details, if there is one."""
    for candidate in (details, details.get("decision"), details.get("evidence")):
        if isinstance(candidate, Mapping) and isinstance(candidate.get("metrics"), list):
            return candidate
    return None


def detection_from_details(at: datetime, details: Mapping[str, Any]) -> DetectionFact | None:
    """One evaluation read from stored details; None when they hold no decision."""
    payload = decision_payload(details)
    if payload is None:
        return None
    evidence = tuple(
        fact for fact in (_evidence(item) for item in payload["metrics"]) if fact is not None
    )
    return DetectionFact(
        at=at,
        state=str(payload.get("state") or "unknown"),
        explanation=str(payload.get("explanation") or ""),
        evidence=evidence,
    )


def detections_from_events(events: Iterable[TimelineEvent]) -> tuple[DetectionFact, ...]:
    """Every recorded evaluation, oldest first."""
    found = (
        detection_from_details(event.occurred_at, event.details)
        for event in events
        if event.kind == DETECTION_KIND
    )
    return tuple(sorted((fact for fact in found if fact is not None), key=lambda f: f.at))


def series_from_detections(detections: Iterable[DetectionFact]) -> tuple[MetricSeries, ...]:
    """The candidate's value per metric at each evaluation: a coarse chart without Prometheus."""
    points: dict[str, list[MetricPoint]] = {}
    labels: dict[str, str] = {}
    for detection in detections:
        for fact in detection.evidence:
            if fact.candidate_value is None:
                continue
            labels.setdefault(fact.metric, fact.label)
            points.setdefault(fact.metric, []).append(
                MetricPoint(
                    at=detection.at,
                    value=fact.candidate_value,
                    baseline=fact.baseline_value,
                    limit=fact.limit_value,
                )
            )
    return tuple(
        MetricSeries(
            name=name,
            label=labels[name],
            unit=unit_of(name),
            points=tuple(values),
            source="the watch's recorded evaluations",
        )
        for name, values in points.items()
    )


def deciding_window_start(detections: tuple[DetectionFact, ...]) -> datetime | None:
    """Start of the window in which the first degraded evaluation found the excess."""
    for detection in detections:
        if detection.state != "degraded":
            continue
        windows = [f.window_seconds for f in detection.evidence if f.state == "degraded"]
        known = [seconds for seconds in windows if seconds]
        return detection.at - timedelta(seconds=max(known)) if known else None
    return None


def _evidence(item: Any) -> EvidenceFact | None:
    if not isinstance(item, Mapping) or not item.get("metric"):
        return None
    metric = str(item["metric"])
    return EvidenceFact(
        metric=metric,
        label=str(item.get("label") or metric.replace("_", " ")),
        state=str(item.get("state") or "unknown"),
        summary=str(item.get("summary") or ""),
        baseline_value=_number(item.get("baseline_value")),
        candidate_value=_number(item.get("candidate_value")),
        limit_value=_number(item.get("limit_value")),
        window_seconds=_number(item.get("window_seconds")),
        sample_count=_number(item.get("sample_count")),
        event_count=_number(item.get("event_count")),
    )


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)
