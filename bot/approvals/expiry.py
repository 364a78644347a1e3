"""Expire rollback requests nobody approved in time, and show it on their cards; post the
cards of pending requests that never reached people (Slack failed, or the process stopped
between committing the proposal and posting it)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot.approvals import service
from bot.incidents import service as incidents
from bot.notify import Notifier
from bot.store import session_scope
from bot.store.models import ApprovalRequest, ApprovalStatus
from bot.store.types import utcnow
from bot.timeline import record_event

# A proposal is posted right after its commit (a command's, by the follow-up runner); one
# still unposted this much later was missed.
POSTING_GRACE = timedelta(minutes=2)


def expire_requests(
    engine: Engine, *, notifier: Notifier, now: datetime | None = None
) -> list[int]:
    """Mark overdue pending requests expired (committed), then update their cards."""
    with session_scope(engine) as session:
        expired = expire_due(session, now=now)
    for request_id in expired:
        notifier.proposal_decided(request_id=request_id)
    return expired


def post_unposted(engine: Engine, *, notifier: Notifier, now: datetime | None = None) -> list[int]:
    """Post again the cards of pending requests that have none yet, oldest first."""
    cutoff = (now or utcnow()) - POSTING_GRACE
    with session_scope(engine) as session:
        missed = session.exec(
            select(ApprovalRequest.id)
            .where(ApprovalRequest.status == ApprovalStatus.PENDING)
            .where(col(ApprovalRequest.slack_ts).is_(None))
            .where(col(ApprovalRequest.created_at) <= cutoff)
            .order_by(col(ApprovalRequest.id))
        ).all()
    posted = [request_id for request_id in missed if request_id is not None]
    for request_id in posted:
        notifier.proposal_created(request_id=request_id)
    return posted


def expire_due(session: Session, *, now: datetime | None = None) -> list[int]:
    """Mark pending requests past their expiry as expired; the ids that expired.

    Locks are taken as a click and a proposal take them, the incident first and then the
    request (one order, no deadlock); a request whose incident or row is held right now (being
    decided) is left for the next pass, so an approval granted in time is never overwritten.
    """
    now = now or utcnow()
    candidates = session.exec(
        select(ApprovalRequest.id, ApprovalRequest.incident_id)
        .where(ApprovalRequest.status == ApprovalStatus.PENDING)
        .where(col(ApprovalRequest.expires_at) <= now)
        .order_by(col(ApprovalRequest.id))
    ).all()
    expired: list[int] = []
    for request_id, incident_id in candidates:
        if incident_id is not None and incidents.try_lock(session, incident_id=incident_id) is None:
            continue  # a click or a proposal holds the incident: next pass
        request = session.exec(
            select(ApprovalRequest)
            .where(ApprovalRequest.id == request_id)
            .with_for_update(skip_locked=True)
            .execution_options(populate_existing=True)
        ).first()
        if request is None or request.status != ApprovalStatus.PENDING:
            continue  # being decided, or decided since the list was read
        assert request.id is not None
        service.finish(session, request=request, status=ApprovalStatus.EXPIRED, at=now)
        record_event(
            session,
            incident_id=request.incident_id,
            kind="approval.expired",
            source="worker",
            actor="rollbot",
            summary=f"Rollback request #{request.id} for {request.model} expired unapproved",
            details={"request_id": request.id},
            occurred_at=now,
        )
        expired.append(request.id)
    return expired
