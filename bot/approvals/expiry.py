"""Expire rollback requests nobody approved in time, and show it on their cards; post the
cards of pending requests that never reached people (Slack failed, or the process stopped
between committing the proposal and posting it)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.engine import Engine
from sqlmodel import col, select

from bot.approvals import service
from bot.notify import Notifier
from bot.store import session_scope
from bot.store.models import ApprovalRequest, ApprovalStatus
from bot.store.types import utcnow

# A proposal is posted right after its commit (a command's, by the follow-up runner); one
# still unposted this much later was missed.
POSTING_GRACE = timedelta(minutes=2)


def expire_requests(
    engine: Engine, *, notifier: Notifier, now: datetime | None = None
) -> list[int]:
    """Mark overdue pending requests expired (committed), then update their cards."""
    with session_scope(engine) as session:
        expired = service.expire_due(session, now=now)
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
