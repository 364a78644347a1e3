"""Expire rollback requests nobody approved in time, and show it on their cards."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.engine import Engine

from bot.approvals import service
from bot.notify import Notifier
from bot.store import session_scope


def expire_requests(
    engine: Engine, *, notifier: Notifier, now: datetime | None = None
) -> list[int]:
    """Mark overdue pending requests expired (committed), then update their cards."""
    with session_scope(engine) as session:
        expired = service.expire_due(session, now=now)
    for request_id in expired:
        notifier.proposal_decided(request_id=request_id)
    return expired
