"""The incident timeline: append-only and tamper-evident.

Every event carries the hash of the event before it in its chain (one chain per incident,
``global`` for events that belong to none). Events are appended in the caller's
transaction, so a state change and the event that records it commit together.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, text
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from bot.store.models import TimelineEvent
from bot.store.types import utcnow

GENESIS_HASH = "0" * 64
_APPEND_ATTEMPTS = 5


def chain_name(incident_id: int | None) -> str:
    """The chain an event belongs to."""
    return f"incident:{incident_id}" if incident_id is not None else "global"


def event_hash(event: TimelineEvent) -> str:
    """SHA-256 over the event's content and the previous hash, in a canonical form."""
    content = {
        "chain": event.chain,
        "seq": event.seq,
        "incident_id": event.incident_id,
        "occurred_at": event.occurred_at.astimezone(UTC).isoformat(),
        "kind": event.kind,
        "source": event.source,
        "actor": event.actor,
        "summary": event.summary,
        "details": event.details,
        "pinned": event.pinned,
        "prev_hash": event.prev_hash,
    }
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def record_event(
    session: Session,
    *,
    kind: str,
    source: str,
    summary: str,
    incident_id: int | None = None,
    actor: str | None = None,
    details: dict[str, Any] | None = None,
    occurred_at: datetime | None = None,
    pinned: bool = False,
) -> TimelineEvent:
    """Append an event to its chain (not committed: it joins the caller's transaction)."""
    chain = chain_name(incident_id)
    # JSON round trip now, so the hash covers exactly what the database will hand back.
    stored_details = json.loads(json.dumps(details or {}, default=str))
    for attempt in range(_APPEND_ATTEMPTS):
        _serialize_appends(session, chain)
        last = session.exec(
            select(TimelineEvent.seq, TimelineEvent.hash)
            .where(TimelineEvent.chain == chain)
            .order_by(col(TimelineEvent.seq).desc())
            .limit(1)
        ).first()
        event = TimelineEvent(
            incident_id=incident_id,
            chain=chain,
            seq=(last[0] + 1) if last else 1,
            occurred_at=occurred_at or utcnow(),
            kind=kind,
            source=source,
            actor=actor,
            summary=summary,
            details=stored_details,
            pinned=pinned,
            prev_hash=last[1] if last else GENESIS_HASH,
            hash="",
        )
        event.hash = event_hash(event)
        try:
            with session.begin_nested():
                session.add(event)
        except IntegrityError:
            # Another writer took this sequence number first; read the new tail and retry.
            if attempt == _APPEND_ATTEMPTS - 1:
                raise
            continue
        return event
    raise AssertionError("unreachable")


def _serialize_appends(session: Session, chain: str) -> None:
    """On PostgreSQL, queue concurrent appenders to one chain instead of letting them race."""
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:chain))"), {"chain": chain})


@dataclass(frozen=True)
class BrokenLink:
    """Where a chain stops verifying, and why."""

    event_id: int | None
    chain: str
    seq: int
    reason: str

    def describe(self) -> str:
        """One line naming the event."""
        return f"timeline event {self.event_id} ({self.chain} #{self.seq}): {self.reason}"


def verify_chains(session: Session) -> list[BrokenLink]:
    """Check every chain; return the first broken link of each broken chain."""
    broken: list[BrokenLink] = []
    chains = session.exec(select(TimelineEvent.chain).distinct()).all()
    for chain in chains:
        link = verify_chain(session, chain)
        if link is not None:
            broken.append(link)
    return broken


def verify_chain(session: Session, chain: str) -> BrokenLink | None:
    """The first event in ``chain`` whose content, hash or predecessor does not check out."""
    expected_prev = GENESIS_HASH
    expected_seq = 1
    events = session.exec(
        select(TimelineEvent).where(TimelineEvent.chain == chain).order_by(col(TimelineEvent.seq))
    )
    for event in events:
        reason = _link_problem(event, expected_seq=expected_seq, expected_prev=expected_prev)
        if reason:
            return BrokenLink(event_id=event.id, chain=chain, seq=event.seq, reason=reason)
        expected_prev = event.hash
        expected_seq += 1
    return None


def _link_problem(event: TimelineEvent, *, expected_seq: int, expected_prev: str) -> str | None:
    if event.seq != expected_seq:
        return f"sequence jumps from {expected_seq - 1} to {event.seq} (an event was deleted)"
    if event.prev_hash != expected_prev:
        return "previous-hash link does not match"
    if event_hash(event) != event.hash:
        return "content does not match its hash (edited after writing)"
    return None


def count_events(session: Session) -> int:
    """How many timeline events are stored."""
    return int(session.scalar(select(func.count()).select_from(TimelineEvent)) or 0)
