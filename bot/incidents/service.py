"""Incident operations. Each writes its timeline event in the caller's transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from bot.errors import ConflictError, NotFoundError
from bot.store.models import Incident, IncidentStatus
from bot.store.types import utcnow
from bot.timeline import record_event

SEVERITIES = ("sev1", "sev2", "sev3", "sev4")
KeyTime = Literal[
    "degraded_at",
    "detected_at",
    "acknowledged_at",
    "approved_at",
    "mitigated_at",
    "verified_at",
    "resolved_at",
]
KEY_TIMES: tuple[KeyTime, ...] = (
    "degraded_at",
    "detected_at",
    "acknowledged_at",
    "approved_at",
    "mitigated_at",
    "verified_at",
    "resolved_at",
)


# Where a person (not the bot, a watch or an alert) acts; their first act acknowledges.
PERSON_SOURCES = frozenset({"slack", "cli", "web"})


def get(session: Session, *, incident_id: int) -> Incident:
    """The incident, or NotFoundError."""
    incident = session.get(Incident, incident_id)
    if incident is None:
        raise NotFoundError(f"incident {incident_id} does not exist")
    return incident


def lock(session: Session, *, incident_id: int) -> Incident:
    """The incident, re-read and held until commit.

    Every transaction that changes an incident's proposals takes this lock first, then the
    requests' rows, then the timeline: one order, so PostgreSQL never deadlocks them. (SQLite
    serialises writers anyway.)
    """
    incident = _locked(session, incident_id, skip_locked=False)
    if incident is None:
        raise NotFoundError(f"incident {incident_id} does not exist")
    return incident


def try_lock(session: Session, *, incident_id: int) -> Incident | None:
    """:func:`lock` for background jobs: None at once when another transaction holds it (or
    the incident is gone), so the job leaves it for its next pass instead of waiting."""
    return _locked(session, incident_id, skip_locked=True)


def _locked(session: Session, incident_id: int, *, skip_locked: bool) -> Incident | None:
    session.flush()
    return session.exec(
        select(Incident)
        .where(Incident.id == incident_id)
        .with_for_update(skip_locked=skip_locked)
        .execution_options(populate_existing=True)
    ).first()


def open_for_model(session: Session, *, model: str) -> Incident | None:
    """The model's incident that is not resolved yet, if any."""
    return session.exec(
        select(Incident)
        .where(Incident.model == model)
        .where(Incident.status != IncidentStatus.RESOLVED)
    ).first()


def list_incidents(
    session: Session, *, include_resolved: bool = False, limit: int = 20
) -> list[Incident]:
    """Newest first."""
    query = select(Incident).order_by(col(Incident.id).desc()).limit(limit)
    if not include_resolved:
        query = query.where(Incident.status != IncidentStatus.RESOLVED)
    return list(session.exec(query).all())


def open_or_join(
    session: Session,
    *,
    model: str,
    title: str,
    actor: str | None,
    source: str,
    severity: str = "sev3",
    detected_at: datetime | None = None,
    degraded_at: datetime | None = None,
    details: dict[str, Any] | None = None,
) -> tuple[Incident, bool]:
    """The model's open incident, opening one if there is none; True when it was opened.

    Concurrent callers (an alert storm, a watch and a person at once) end up in the same
    incident: the database allows one unresolved incident per model, and the loser of the
    race joins the winner's.
    """
    _check_severity(severity)
    existing = open_for_model(session, model=model)
    if existing is not None:
        return existing, False
    incident = Incident(
        model=model,
        title=title,
        severity=severity,
        declared_by=actor,
        detected_at=detected_at,
        degraded_at=degraded_at,
    )
    try:
        with session.begin_nested():
            session.add(incident)
    except IntegrityError:
        winner = open_for_model(session, model=model)
        if winner is None:
            raise
        return winner, False
    assert incident.id is not None
    record_event(
        session,
        incident_id=incident.id,
        kind="incident.opened",
        source=source,
        actor=actor,
        summary=f"Incident opened: {title} ({severity})",
        details={"model": model, "severity": severity, **(details or {})},
        occurred_at=detected_at,
    )
    return incident, True


def declare(
    session: Session,
    *,
    title: str,
    actor: str,
    source: str,
    model: str | None = None,
    severity: str = "sev3",
) -> Incident:
    """A person declares an incident; for a model that already has one, that is a conflict."""
    _check_severity(severity)
    if model is not None:
        incident, opened = open_or_join(
            session, model=model, title=title, actor=actor, source=source, severity=severity
        )
        if not opened:
            raise ConflictError(
                f"{model} already has an open incident: #{incident.id} {incident.title}"
            )
        # The person declaring it is who detected it, and is on it.
        incident.detected_at = incident.detected_at or incident.created_at
        incident.acknowledged_at = incident.created_at
        return incident
    incident = Incident(title=title, severity=severity, declared_by=actor)
    session.add(incident)
    session.flush()
    assert incident.id is not None
    incident.detected_at = incident.acknowledged_at = incident.created_at
    record_event(
        session,
        incident_id=incident.id,
        kind="incident.opened",
        source=source,
        actor=actor,
        summary=f"Incident declared: {title} ({severity})",
        details={"severity": severity},
    )
    return incident


def set_severity(
    session: Session, *, incident: Incident, severity: str, actor: str, source: str
) -> None:
    """Change the severity."""
    _check_severity(severity)
    _check_open(incident)
    if severity == incident.severity:
        return
    note_response(session, incident=incident, actor=actor, source=source)
    before, incident.severity = incident.severity, severity
    session.add(incident)
    record_event(
        session,
        incident_id=incident.id,
        kind="incident.severity",
        source=source,
        actor=actor,
        summary=f"Severity changed from {before} to {severity}",
        details={"from": before, "to": severity},
    )


def raise_to_sev2(session: Session, *, incident: Incident, actor: str, source: str) -> None:
    """An escalation: a sev3 or sev4 incident that is still open becomes sev2."""
    if incident.status != IncidentStatus.RESOLVED and incident.severity in ("sev3", "sev4"):
        set_severity(session, incident=incident, severity="sev2", actor=actor, source=source)


def acknowledge(
    session: Session,
    *,
    incident: Incident,
    actor: str,
    source: str,
    at: datetime | None = None,
) -> bool:
    """The first person to respond; False when it was acknowledged already."""
    if incident.acknowledged_at is not None:
        return False
    incident.acknowledged_at = at or utcnow()
    session.add(incident)
    record_event(
        session,
        incident_id=incident.id,
        kind="incident.acknowledged",
        source=source,
        actor=actor,
        summary=f"Acknowledged by {actor}",
        occurred_at=incident.acknowledged_at,
    )
    return True


def note_response(
    session: Session,
    *,
    incident: Incident,
    actor: str | None,
    source: str,
    at: datetime | None = None,
) -> None:
    """A person acted on the incident (a note, a severity, an approval): the first such act
    is its acknowledgement. Acts of the bot, a watch or an alert are not."""
    if actor and source in PERSON_SOURCES:
        acknowledge(session, incident=incident, actor=actor, source=source, at=at)


def add_note(
    session: Session,
    *,
    incident: Incident,
    text: str,
    actor: str | None,
    source: str,
    occurred_at: datetime | None = None,
    pinned: bool = False,
    details: dict[str, Any] | None = None,
) -> None:
    """A note on the timeline (from `/rollbot note`, a shortcut or a pinned reaction)."""
    text = text.strip()
    if not text:
        raise ValueError("a note needs some text")
    note_response(session, incident=incident, actor=actor, source=source)
    record_event(
        session,
        incident_id=incident.id,
        kind="note",
        source=source,
        actor=actor,
        summary=text,
        details=details,
        occurred_at=occurred_at,
        pinned=pinned,
    )


def mark_time(
    session: Session, *, incident: Incident, key: KeyTime, at: datetime | None = None
) -> bool:
    """Set a key time the first time it happens; later calls leave it as it was."""
    if getattr(incident, key) is not None:
        return False
    setattr(incident, key, at or utcnow())
    session.add(incident)
    return True


def correct_time(
    session: Session,
    *,
    incident: Incident,
    key: KeyTime,
    at: datetime,
    actor: str,
    source: str,
    reason: str | None = None,
) -> None:
    """A person corrects a key time; the correction is itself a timeline event."""
    if key not in KEY_TIMES:
        raise ValueError(f"unknown key time {key!r}; one of {', '.join(KEY_TIMES)}")
    if at.tzinfo is None:
        raise ValueError("a corrected time needs a timezone")
    before = getattr(incident, key)
    setattr(incident, key, at)
    session.add(incident)
    label = key.removesuffix("_at")
    record_event(
        session,
        incident_id=incident.id,
        kind="incident.time_corrected",
        source=source,
        actor=actor,
        summary=f"{label} time corrected to {at.isoformat()}" + (f": {reason}" if reason else ""),
        details={
            "key": key,
            "from": before.isoformat() if before else None,
            "to": at.isoformat(),
            "reason": reason,
        },
    )


def set_status(
    session: Session, *, incident: Incident, status: IncidentStatus, actor: str | None, source: str
) -> None:
    """Move an unresolved incident along (open → mitigating → monitoring)."""
    _check_open(incident)
    if incident.status == status:
        return
    note_response(session, incident=incident, actor=actor, source=source)
    before, incident.status = incident.status, status
    session.add(incident)
    record_event(
        session,
        incident_id=incident.id,
        kind="incident.status",
        source=source,
        actor=actor,
        summary=f"Status changed from {before} to {status}",
        details={"from": before, "to": str(status)},
    )


def resolve(
    session: Session,
    *,
    incident: Incident,
    actor: str | None,
    source: str,
    summary: str | None = None,
) -> None:
    """Close the incident; its key resolution time is now."""
    _check_open(incident)
    note_response(session, incident=incident, actor=actor, source=source)
    incident.status = IncidentStatus.RESOLVED
    mark_time(session, incident=incident, key="resolved_at")
    session.add(incident)
    record_event(
        session,
        incident_id=incident.id,
        kind="incident.resolved",
        source=source,
        actor=actor,
        summary="Incident resolved" + (f": {summary}" if summary else ""),
    )


def _check_severity(severity: str) -> None:
    if severity not in SEVERITIES:
        raise ValueError(f"unknown severity {severity!r}; one of {', '.join(SEVERITIES)}")


def _check_open(incident: Incident) -> None:
    if incident.status == IncidentStatus.RESOLVED:
        raise ConflictError(f"incident #{incident.id} is already resolved")
