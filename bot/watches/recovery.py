"""After a rollback, the watch checks that the metrics came back (DESIGN flow 4).

The restored version is judged against its own metrics before the deploy it replaced. Back
within the boundaries marks the incident verified; still beyond them escalates it (at least
sev2, once), because rolling back did not help and a person must look. Neither happens
before the rollback's traffic shift is complete (the incident's mitigation time).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, select

from bot.detection.evidence import Decision, DetectionState
from bot.incidents import service as incidents
from bot.store.models import IncidentStatus, TimelineEvent
from bot.timeline import record_event
from bot.watches.flows import ACTOR, SOURCE
from bot.watches.targets import WatchTarget

ESCALATED = "incident.escalated"
VERIFIED = "incident.verified"


@dataclass(frozen=True)
class RecoveryOutcome:
    """What the check did to the incident, for telling people after the commit."""

    incident_id: int
    kind: str
    summary: str


def check_recovery(
    session: Session,
    *,
    target: WatchTarget,
    decision: Decision,
    details: dict[str, Any],
    now: datetime,
    confirmed: bool = True,
) -> RecoveryOutcome | None:
    """Verify or escalate the model's open, mitigated incident on a clear verdict; a
    degraded one only once the watch's ``confirmations`` are ``confirmed``."""
    if decision.state == DetectionState.DEGRADED and not confirmed:
        return None
    if decision.state not in (DetectionState.HEALTHY, DetectionState.DEGRADED):
        return None
    found = incidents.open_for_model(session, model=target.model)
    if found is None or found.id is None:
        return None
    incident = incidents.lock(session, incident_id=found.id)
    if incident.mitigated_at is None or incident.status == IncidentStatus.RESOLVED:
        return None
    version = target.candidate_version
    if decision.state == DetectionState.HEALTHY:
        if not incidents.mark_time(session, incident=incident, key="verified_at", at=now):
            return None
        summary = (
            f"Verified: after the rollback, {target.model} {version} is back within its "
            f"boundaries ({decision.explain()})"
        )
        kind = VERIFIED
    else:
        if _escalated_by_watch(session, found.id):
            return None
        incidents.raise_to_sev2(session, incident=incident, actor=ACTOR, source=SOURCE)
        summary = (
            f"Escalated: after the rollback, {target.model} {version} is still beyond its "
            f"boundaries against its own metrics before the deploy it replaced "
            f"({decision.explain()}). Rolling back did not help: the cause may lie outside "
            "the model (data, a dependency, traffic). The rollback is kept; a person needs "
            "to look now."
        )
        kind = ESCALATED
    record_event(
        session,
        incident_id=incident.id,
        kind=kind,
        source=SOURCE,
        actor=ACTOR,
        summary=summary,
        details=details,
        occurred_at=now,
    )
    return RecoveryOutcome(found.id, kind, summary)


def _escalated_by_watch(session: Session, incident_id: int) -> bool:
    return (
        session.exec(
            select(TimelineEvent.id)
            .where(TimelineEvent.incident_id == incident_id)
            .where(TimelineEvent.kind == ESCALATED)
            .where(TimelineEvent.source == SOURCE)
        ).first()
        is not None
    )
