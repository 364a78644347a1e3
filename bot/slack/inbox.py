"""The Slack inbox: each request accepted once, and its follow-up work kept until done.

One table does two jobs. Its key is the request's signature (or Socket Mode envelope id), so
inserting a key that is already there is a replay, refused by every web process sharing the
database. A request whose listener left work to do (run a command, count a click) carries
that work as ``kind`` + ``payload`` with status ``pending``: it survives a restart, and a
runner in any process claims it with a lease (see ``bot.slack.follow_ups``).

On the ack path the insert is the only database write, and :class:`BatchedAdmission` commits
the inserts of concurrent requests together, so a burst of fifty pays for one or two commits
(an fsync each on SQLite) instead of fifty.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, and_, delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from bot.store.models import SlackInbox, SlackInboxStatus
from bot.store.types import utcnow

log = logging.getLogger(__name__)
TABLE: Table = SlackInbox.__table__  # type: ignore[attr-defined]
# Bolt refuses timestamps older than five minutes; remember keys a little longer (clock skew).
REPLAY_WINDOW = timedelta(minutes=6)
PURGE_EVERY_SECONDS = 60.0


@dataclass(frozen=True)
class FollowUp:
    """Work a listener leaves for after the ack: what to do and the plain values it needs."""

    kind: str
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Admission:
    """One request to accept: its replay key and the follow-up work, if any."""

    key: str
    follow_up: FollowUp | None = None
    # When Slack signed the request: its key is kept as long as the signature is accepted,
    # which a clock ahead of ours can stretch past the time of receipt.
    sent_at: datetime | None = None


def admit(engine: Engine, admissions: Sequence[Admission]) -> list[bool]:
    """Insert every admission in one transaction; per admission, False when it is a replay."""
    now = utcnow()
    first: dict[str, int] = {}
    for position, admission in enumerate(admissions):
        first.setdefault(admission.key, position)
    rows = [_row(admissions[position], now) for position in first.values()]
    with engine.begin() as connection:
        inserted = _insert_new(connection, rows) if rows else set()
    return [
        first[admission.key] == position and admission.key in inserted
        for position, admission in enumerate(admissions)
    ]


def _row(admission: Admission, now: datetime) -> dict[str, Any]:
    follow_up = admission.follow_up
    return {
        "key": admission.key,
        "expires_at": max(now, admission.sent_at or now) + REPLAY_WINDOW,
        "status": SlackInboxStatus.PENDING if follow_up else SlackInboxStatus.ACKED,
        "kind": follow_up.kind if follow_up else None,
        "payload": follow_up.payload if follow_up else {},
        "attempts": 0,
        "received_at": now,
    }


def _insert_new(connection: Connection, rows: list[dict[str, Any]]) -> set[str]:
    """Insert the rows whose key is new; the keys that were inserted."""
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    statement = (
        dialect.insert(TABLE)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["key"])
        .returning(TABLE.c.key)
    )
    return set(connection.execute(statement).scalars())


def purge_expired(engine: Engine) -> int:
    """Forget keys past their replay window whose work is not pending; how many went."""
    with engine.begin() as connection:
        result = connection.execute(
            delete(TABLE)
            .where(TABLE.c.expires_at < utcnow())
            .where(TABLE.c.status != SlackInboxStatus.PENDING)
        )
    return int(result.rowcount or 0)


def claim(engine: Engine, *, limit: int, lease: timedelta) -> list[SlackInbox]:
    """Take up to ``limit`` pending requests whose lease is free, oldest first."""
    now = utcnow()
    free = or_(TABLE.c.lease_until.is_(None), TABLE.c.lease_until < now)
    pending = and_(TABLE.c.status == SlackInboxStatus.PENDING, free)
    with engine.begin() as connection:
        keys = list(
            connection.execute(
                select(TABLE.c.key).where(pending).order_by(TABLE.c.received_at).limit(limit)
            ).scalars()
        )
        if not keys:
            return []
        # The condition is repeated so that a runner racing us for a key gets no row.
        claimed = connection.execute(
            update(TABLE)
            .where(TABLE.c.key.in_(keys), pending)
            .values(lease_until=now + lease, attempts=TABLE.c.attempts + 1)
            .returning(*TABLE.c)
        ).all()
    return sorted((SlackInbox(**row._mapping) for row in claimed), key=lambda r: r.received_at)


def finish(engine: Engine, *, key: str, error: str | None = None) -> None:
    """Mark the work done (or failed for good, with why); its key keeps guarding replays."""
    status = SlackInboxStatus.FAILED if error else SlackInboxStatus.DONE
    with engine.begin() as connection:
        connection.execute(
            update(TABLE)
            .where(TABLE.c.key == key)
            .values(status=status, error=error, lease_until=None, payload={})
        )


class BatchedAdmission:
    """Admits requests from the event loop, committing concurrent ones in one transaction.

    A single writer thread takes whatever has queued since its last commit, so the batch
    grows with the load and a lone request still commits at once.
    """

    def __init__(self, engine: Engine, *, admitted: Callable[[], None] = lambda: None) -> None:
        self._engine = engine
        self._admitted = admitted
        self._queue: queue.SimpleQueue[tuple[Admission, Future[bool]]] = queue.SimpleQueue()
        self._started = threading.Lock()
        self._thread: threading.Thread | None = None
        self._purged_at = 0.0

    async def admit(self, admission: Admission) -> bool:
        """Whether the request is new (False: a replay); its follow-up is then stored."""
        self._start()
        future: Future[bool] = Future()
        self._queue.put((admission, future))
        return await asyncio.wrap_future(future)

    def _start(self) -> None:
        with self._started:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._write_forever, name="slack-inbox", daemon=True
                )
                self._thread.start()

    def _write_forever(self) -> None:
        while True:
            batch = [self._queue.get()]
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self._write(batch)

    def _write(self, batch: list[tuple[Admission, Future[bool]]]) -> None:
        try:
            results = admit(self._engine, [admission for admission, _ in batch])
        except Exception as error:
            for _, future in batch:
                future.set_exception(error)
            return
        for (_, future), result in zip(batch, results, strict=True):
            future.set_result(result)
        if any(a.follow_up is not None for (a, _), ok in zip(batch, results, strict=True) if ok):
            self._admitted()
        self._purge_now_and_then()

    def _purge_now_and_then(self) -> None:
        if time.monotonic() - self._purged_at < PURGE_EVERY_SECONDS:
            return
        self._purged_at = time.monotonic()
        try:
            purge_expired(self._engine)
        except Exception:
            log.warning("could not purge expired Slack inbox rows", exc_info=True)
