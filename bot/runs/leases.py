"""Which worker executes a run: a lease on the run row, claimed atomically.

A worker owns a run while ``claimed_by`` names it and ``lease_expires_at`` lies ahead. A
worker that dies simply stops renewing, and once the lease runs out any worker may claim the
run and resume it. A run waiting out a long retry backoff is parked with no owner and a lease
that expires when the retry is due, so the same mechanism wakes it up.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import CursorResult, or_, update
from sqlmodel import Session, col, select

from bot.store.db import is_postgres
from bot.store.models import RunbookRun, RunStatus


class LeaseLost(Exception):
    """Another worker took the run over (this one overran its lease); stop touching it."""


def _claimable(now: datetime, worker_id: str) -> list[object]:
    return [
        col(RunbookRun.status).in_(RunStatus.active()),
        or_(
            col(RunbookRun.lease_expires_at).is_(None),
            col(RunbookRun.lease_expires_at) <= now,
            col(RunbookRun.claimed_by) == worker_id,
        ),
    ]


def claim(
    session: Session, *, run_id: int, worker_id: str, now: datetime, lease: timedelta
) -> bool:
    """Take the run if it is active and nobody else holds a live lease on it."""
    result = session.exec(
        update(RunbookRun)
        .where(col(RunbookRun.id) == run_id, *_claimable(now, worker_id))  # type: ignore[arg-type]
        .values(claimed_by=worker_id, lease_expires_at=now + lease)
    )
    return cast(CursorResult[tuple[()]], result).rowcount == 1


def claim_next_due(
    session: Session,
    *,
    worker_id: str,
    now: datetime,
    lease: timedelta,
    skip: Collection[int] = (),
) -> int | None:
    """Claim the oldest active run whose lease has run out; None when there is none."""
    due = (
        select(RunbookRun.id)
        .where(
            col(RunbookRun.status).in_(RunStatus.active()),
            or_(
                col(RunbookRun.lease_expires_at).is_(None),
                col(RunbookRun.lease_expires_at) <= now,
            ),
            col(RunbookRun.id).not_in(list(skip)),
        )
        .order_by(col(RunbookRun.id))
    )
    if is_postgres(session.get_bind().engine):
        # Row locks let many workers scan at once without claiming the same run twice.
        run_id = session.exec(due.limit(1).with_for_update(skip_locked=True)).first()
        if run_id is None:
            return None
        run = session.get(RunbookRun, run_id)
        assert run is not None
        run.claimed_by, run.lease_expires_at = worker_id, now + lease
        session.add(run)
        return run_id
    # SQLite takes the database write lock up front (BEGIN IMMEDIATE); the conditional
    # UPDATE in claim() still decides, so a run claimed meanwhile is passed over.
    for run_id in session.exec(due).all():
        if run_id is not None and claim(
            session, run_id=run_id, worker_id=worker_id, now=now, lease=lease
        ):
            return run_id
    return None


def hold(session: Session, *, run_id: int, worker_id: str) -> RunbookRun:
    """The run, locked for this transaction, if this worker still owns it; else LeaseLost."""
    run = session.get(RunbookRun, run_id, with_for_update=True, populate_existing=True)
    if run is None or run.claimed_by != worker_id:
        raise LeaseLost(f"run #{run_id} is no longer held by {worker_id}")
    return run


def release(run: RunbookRun, *, until: datetime | None = None) -> None:
    """Give the run up; with ``until``, nobody may claim it before then (a parked retry)."""
    run.claimed_by = None
    run.lease_expires_at = until
