"""Reminders: what still waits on people, said once more before it is too late.

A rollback proposal still short of approvals halfway to its expiry reminds its approvers; an
incident nobody acknowledged within ``UNACKNOWLEDGED_AFTER`` of its detection reminds its
responders and the model's owners. Each is sent once, and the timeline records it; the job
that sends them may run on any worker, so what was sent is read back from the timeline.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from bot.approvals.policy import PolicySnapshot
from bot.approvals.service import approvers
from bot.config.durations import format_duration
from bot.config.models import RollbotConfig
from bot.store.models import (
    ApprovalRequest,
    ApprovalStatus,
    Incident,
    IncidentStatus,
    TimelineEvent,
)
from bot.timeline import record_event

APPROVAL_REMINDED = "approval.reminded"
INCIDENT_REMINDED = "incident.reminded"
UNACKNOWLEDGED_AFTER = timedelta(minutes=10)
ACTOR = "rollbot"
SOURCE = "worker"


@dataclass(frozen=True)
class Reminder:
    """One reminder for an incident's channel: the words and whom to mention (Slack ids)."""

    incident_id: int
    text: str
    mentions: tuple[str, ...]


def send_due(session: Session, *, config: RollbotConfig, now: datetime) -> list[Reminder]:
    """Record every reminder due at ``now`` that was not sent before; the ones to post."""
    reminders = [
        *_approvals_waiting(session, now),
        *_incidents_unacknowledged(session, config, now),
    ]
    for reminder, kind, details in reminders:
        record_event(
            session,
            incident_id=reminder.incident_id,
            kind=kind,
            source=SOURCE,
            actor=ACTOR,
            summary=reminder.text,
            details=details,
            occurred_at=now,
        )
    return [reminder for reminder, _, _ in reminders]


_Due = tuple[Reminder, str, dict[str, object]]


def _approvals_waiting(session: Session, now: datetime) -> list[_Due]:
    pending = session.exec(
        select(ApprovalRequest)
        .where(ApprovalRequest.status == ApprovalStatus.PENDING)
        .where(col(ApprovalRequest.incident_id).is_not(None))
        .where(col(ApprovalRequest.expires_at) > now)
    ).all()
    halfway = [r for r in pending if r.created_at + (r.expires_at - r.created_at) / 2 <= now]
    sent = _sent(session, APPROVAL_REMINDED, [r.incident_id for r in halfway], "request_id")
    due: list[_Due] = []
    for request in halfway:
        if request.id in sent or request.incident_id is None:
            continue
        policy = PolicySnapshot.from_dict(request.policy)
        given = len(approvers(session, request=request))
        text = (
            f"⏰ The rollback of {request.model} {request.from_version} → {request.to_version} "
            f"(request #{request.id}) has {given} of {policy.approvals} approval(s) and "
            f"expires in {format_duration(request.expires_at - now)}."
        )
        mentions = (*policy.approver_groups, *policy.approvers)
        due.append(
            (
                Reminder(request.incident_id, text, mentions),
                APPROVAL_REMINDED,
                {"request_id": request.id},
            )
        )
    return due


def _incidents_unacknowledged(session: Session, config: RollbotConfig, now: datetime) -> list[_Due]:
    waiting = session.exec(
        select(Incident)
        .where(Incident.status != IncidentStatus.RESOLVED)
        .where(col(Incident.acknowledged_at).is_(None))
    ).all()
    overdue = [i for i in waiting if (i.detected_at or i.created_at) + UNACKNOWLEDGED_AFTER <= now]
    sent = _sent(session, INCIDENT_REMINDED, [i.id for i in overdue], "incident_id")
    due: list[_Due] = []
    for incident in overdue:
        if incident.id is None or incident.id in sent:
            continue
        since = incident.detected_at or incident.created_at
        text = (
            f"⏰ Incident #{incident.id} ({incident.title}) has had no response for "
            f"{format_duration(now - since)}. Say you are on it: `/rollbot note <what you "
            "see>` in this channel (a severity or status change, a rollback request or a "
            "click on its card counts too)."
        )
        model = config.models.get(incident.model or "")
        mentions = (*config.slack.responders, *(model.owners if model else ()))
        due.append(
            (Reminder(incident.id, text, mentions), INCIDENT_REMINDED, {"incident_id": incident.id})
        )
    return due


def _sent(session: Session, kind: str, incident_ids: Iterable[int | None], key: str) -> set[object]:
    ids = sorted({i for i in incident_ids if i is not None})
    if not ids:
        return set()
    events = session.exec(
        select(TimelineEvent.details)
        .where(TimelineEvent.kind == kind)
        .where(col(TimelineEvent.incident_id).in_(ids))
    ).all()
    return {details.get(key) for details in events}
