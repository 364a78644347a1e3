"""One scheduler leader among many workers, elected through the database.

PostgreSQL: a session-level advisory lock held on a dedicated connection. The server drops
it the moment that connection dies, so a killed leader is replaced at the standby's next
poll. SQLite: a lease row renewed by the leader and taken over once it expires.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Protocol

from sqlalchemy import delete, text, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlmodel import Session, select

from bot.store.models import SchedulerLease
from bot.store.types import utcnow

log = logging.getLogger(__name__)

# Arbitrary but fixed: "rollbot" in ASCII, so it does not collide with other applications.
ADVISORY_LOCK_KEY = 0x726F6C6C626F74


class LeaderElection(Protocol):
    """Try to become leader, check we still are, and step down."""

    def try_acquire(self) -> bool: ...

    def still_leader(self) -> bool: ...

    def release(self) -> None: ...


class AdvisoryLockElection:
    """Leadership as a PostgreSQL advisory lock on a connection of its own."""

    def __init__(self, engine: Engine, key: int = ADVISORY_LOCK_KEY) -> None:
        self._engine = engine
        self._key = key
        self._connection: Connection | None = None

    def try_acquire(self) -> bool:
        connection = self._engine.connect()
        try:
            got = connection.execute(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": self._key}
            ).scalar()
            connection.commit()
        except DBAPIError:
            connection.close()
            raise
        if got:
            self._connection = connection
            return True
        connection.close()
        return False

    def still_leader(self) -> bool:
        if self._connection is None:
            return False
        try:
            self._connection.execute(text("SELECT 1"))
            self._connection.commit()
        except DBAPIError:
            log.warning("lost the database connection that holds the leader lock")
            self._drop_connection()
            return False
        return True

    def release(self) -> None:
        if self._connection is None:
            return
        try:
            self._connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self._key})
            self._connection.commit()
        except DBAPIError:
            pass  # the lock goes with the connection anyway
        self._drop_connection()

    def _drop_connection(self) -> None:
        if self._connection is not None:
            try:
                self._connection.invalidate()
                self._connection.close()
            except DBAPIError:
                pass
            self._connection = None


class LeaseElection:
    """Leadership as an expiring lease row, for SQLite."""

    def __init__(
        self,
        engine: Engine,
        holder: str,
        *,
        ttl: timedelta = timedelta(seconds=15),
        name: str = "scheduler",
    ) -> None:
        self._engine = engine
        self._holder = holder
        self._ttl = ttl
        self._name = name
        # The database error last logged, so a standby that cannot even read the lease says
        # why once, instead of waiting silently or repeating it at every poll.
        self._trouble: str | None = None

    def try_acquire(self) -> bool:
        now = utcnow()
        try:
            with Session(self._engine) as session:
                taken = (
                    session.connection()
                    .execute(
                        update(SchedulerLease)
                        .where(SchedulerLease.name == self._name)  # type: ignore[arg-type]
                        .where(
                            (SchedulerLease.holder == self._holder)  # type: ignore[arg-type]
                            | (SchedulerLease.expires_at < now)
                        )
                        .values(holder=self._holder, acquired_at=now, expires_at=now + self._ttl)
                    )
                    .rowcount
                )
                if not taken and session.get(SchedulerLease, self._name) is None:
                    session.add(
                        SchedulerLease(
                            name=self._name,
                            holder=self._holder,
                            acquired_at=now,
                            expires_at=now + self._ttl,
                        )
                    )
                    taken = 1
                session.commit()
        except IntegrityError:
            return False  # another worker took it first
        except OperationalError as exc:
            self._note_trouble(exc)
            return False
        if self._trouble is not None:
            log.info("the scheduler lease can be read again")
            self._trouble = None
        return bool(taken)

    def _note_trouble(self, exc: OperationalError) -> None:
        reason = str(exc.orig)
        if "locked" in reason or "busy" in reason:
            return  # another worker is writing: ordinary contention
        if reason != self._trouble:
            log.warning("cannot take the scheduler lease, standing by: %s", reason)
        self._trouble = reason

    def still_leader(self) -> bool:
        """Renew the lease; False when someone else holds it now."""
        now = utcnow()
        try:
            with Session(self._engine) as session:
                renewed = (
                    session.connection()
                    .execute(
                        update(SchedulerLease)
                        .where(SchedulerLease.name == self._name)  # type: ignore[arg-type]
                        .where(SchedulerLease.holder == self._holder)  # type: ignore[arg-type]
                        .values(expires_at=now + self._ttl)
                    )
                    .rowcount
                )
                session.commit()
        except OperationalError:
            return False
        return bool(renewed)

    def release(self) -> None:
        with Session(self._engine) as session:
            session.execute(
                delete(SchedulerLease)
                .where(SchedulerLease.name == self._name)  # type: ignore[arg-type]
                .where(SchedulerLease.holder == self._holder)  # type: ignore[arg-type]
            )
            session.commit()

    def current_holder(self) -> str | None:
        """Who holds the lease now (for status output)."""
        with Session(self._engine) as session:
            lease = session.exec(
                select(SchedulerLease).where(SchedulerLease.name == self._name)
            ).first()
            return lease.holder if lease and lease.expires_at > utcnow() else None


def election_for(engine: Engine, holder: str) -> LeaderElection:
    """The election mechanism that fits the database."""
    if engine.dialect.name == "postgresql":
        return AdvisoryLockElection(engine)
    return LeaseElection(engine, holder)
