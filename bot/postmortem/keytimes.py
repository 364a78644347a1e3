"""Key times, where each came from, and the durations between them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from bot.incidents.service import KEY_TIMES
from bot.postmortem.facts import KEY_TIME_LABELS, DurationFact, KeyTimeFact, TimelineEntry
from bot.store.models import Incident, TimelineEvent

CORRECTION_KIND = "incident.time_corrected"
# Where people act; the watch, alerts and the runbook engine record under their own names.
PERSON_SOURCES = frozenset({"slack", "cli", "web"})

_BASIS = {
    "degraded_at": "when the metrics went beyond their boundaries: the watch's evidence, or "
    "the start of the first alert",
    "detected_at": "when the incident was opened by the watch, an alert or a person",
    "acknowledged_at": "the first response by a person",
    "approved_at": "when the approvals the policy asks for were complete",
    "mitigated_at": "when traffic was back on the safe version",
    "verified_at": "when the metrics were back within their boundaries",
    "resolved_at": "when the incident was closed",
}

_NOT_RECORDED = {
    "detected_at": "not reached: no detection time was recorded",
    "acknowledged_at": "not reached: no one acknowledged the incident through Rollbot",
    "approved_at": "not reached: no approval was recorded",
    "mitigated_at": "not reached: traffic was not recorded as back on a safe version",
    "verified_at": "not reached: the watch did not confirm the metrics back within boundaries",
    "resolved_at": "not reached: no resolution time was recorded",
}

# (label, from, to): how long each stage took, measured from where it could start.
DURATIONS: tuple[tuple[str, str, str], ...] = (
    ("Time to detect", "degraded_at", "detected_at"),
    ("Time to acknowledge", "detected_at", "acknowledged_at"),
    ("Time to approve", "detected_at", "approved_at"),
    ("Time to mitigate", "detected_at", "mitigated_at"),
    ("Time to verify", "mitigated_at", "verified_at"),
    ("Time to resolve", "detected_at", "resolved_at"),
)


@dataclass(frozen=True)
class StageOutcomes:
    """What happened to the stages that can end an incident early; explains "not reached"."""

    resolved: bool
    approval_statuses: tuple[str, ...]
    run_statuses: tuple[str, ...]
    has_metrics: bool


def corrections(events: Iterable[TimelineEvent]) -> dict[str, TimelineEntry]:
    """The latest correction of each key time."""
    latest: dict[str, TimelineEntry] = {}
    for event in events:
        if event.kind != CORRECTION_KIND:
            continue
        key = str(event.details.get("key", ""))
        latest[key] = TimelineEntry(
            at=event.occurred_at,
            kind=event.kind,
            source=event.source,
            actor=event.actor,
            summary=event.summary,
            pinned=event.pinned,
        )
    return latest


def key_time_facts(
    incident: Incident,
    *,
    corrected: Mapping[str, TimelineEntry],
    estimated_degradation: tuple[datetime, str] | None,
    outcomes: StageOutcomes,
    estimated_acknowledgement: tuple[datetime, str] | None = None,
) -> tuple[KeyTimeFact, ...]:
    """Every key time in order; missing ones say why they were not reached.

    An estimated degradation start replaces the recorded one (the caller decides when the
    metrics know better); an estimated acknowledgement only fills a gap.
    """
    facts = []
    for key in KEY_TIMES:
        at: datetime | None = getattr(incident, key)
        basis = _BASIS[key]
        if key == "degraded_at" and estimated_degradation is not None:
            at, basis = estimated_degradation
        if at is None and key == "acknowledged_at" and estimated_acknowledgement is not None:
            at, basis = estimated_acknowledgement
        if at is None:
            basis = _why_not_reached(key, outcomes)
        correction = corrected.get(key)
        facts.append(
            KeyTimeFact(
                key=key,
                label=KEY_TIME_LABELS[key],
                at=at,
                basis=basis,
                missing="not known" if key == "degraded_at" else "not reached",
                correction=_describe(correction) if correction else None,
            )
        )
    return tuple(facts)


def first_response(
    timeline: Iterable[TimelineEntry], *, after: datetime | None
) -> tuple[datetime, str] | None:
    """The first thing a person did in the incident after it was detected, if anything."""
    for entry in timeline:
        if after is not None and entry.at < after:
            continue
        if entry.source in PERSON_SOURCES and entry.actor and entry.kind != CORRECTION_KIND:
            what = entry.kind.replace("_", " ").replace(".", " ")
            return (
                entry.at,
                f"the first response by a person on the timeline ({entry.actor}: {what})",
            )
    return None


def duration_facts(key_times: Iterable[KeyTimeFact]) -> tuple[DurationFact, ...]:
    """The durations between key times; a negative one points at a key time worth checking."""
    times = {fact.key: fact.at for fact in key_times}
    facts = []
    for label, start_key, end_key in DURATIONS:
        start, end = times.get(start_key), times.get(end_key)
        seconds = (end - start).total_seconds() if start and end else None
        why = None
        if seconds is None:
            missing = [KEY_TIME_LABELS[k].split(" (")[0].lower() for k in (start_key, end_key)]
            gaps = [name for name, at in zip(missing, (start, end), strict=True) if at is None]
            why = f"not reached ({' and '.join(gaps)} not recorded)"
        elif seconds < 0:
            why = "the key times are out of order; worth checking and correcting"
            seconds = None
        facts.append(DurationFact(label, start_key, end_key, seconds, why))
    return tuple(facts)


def _why_not_reached(key: str, outcomes: StageOutcomes) -> str:
    if key == "degraded_at":
        if outcomes.has_metrics:
            return "not known: the recorded metrics do not show when the excess began"
        return "not known: no metric evidence was recorded for this incident"
    if key == "approved_at" and "rejected" in outcomes.approval_statuses:
        return "not reached: the proposed rollback was rejected"
    if key == "approved_at" and "expired" in outcomes.approval_statuses:
        return "not reached: the proposed rollback expired before enough approvals"
    if key == "approved_at" and not outcomes.approval_statuses:
        return "not reached: no rollback was proposed"
    if key in ("mitigated_at", "verified_at"):
        if "failed" in outcomes.run_statuses or "aborted" in outcomes.run_statuses:
            return "not reached: the rollback run did not complete"
        if not outcomes.run_statuses:
            return "not reached: no rollback ran"
    if key == "resolved_at" and not outcomes.resolved:
        return "not reached: the incident is still open"
    return _NOT_RECORDED.get(key, "not reached")


def _describe(correction: TimelineEntry) -> str:
    who = correction.actor or "a person"
    return f"corrected by {who} on {correction.at:%Y-%m-%d %H:%M} UTC ({correction.summary})"
