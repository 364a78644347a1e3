"""One migration history for SQLite and PostgreSQL, and the constraints it promises."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from bot.store import make_engine, migrate
from bot.store.models import Incident, IncidentStatus, RunbookRun, RunStatus


def test_models_and_migrations_agree(database_url: str) -> None:
    # `alembic check` raises when autogenerate would write a new revision.
    migrate.check(database_url)


def test_upgrade_downgrade_upgrade_round_trip(empty_database_url: str) -> None:
    engine = make_engine(empty_database_url)
    migrate.upgrade(empty_database_url)
    assert migrate.current_revision(engine) == migrate.head_revision()
    assert "timeline_event" in inspect(engine).get_table_names()
    migrate.downgrade(empty_database_url, "base")
    assert migrate.current_revision(engine) is None
    assert "timeline_event" not in inspect(engine).get_table_names()
    migrate.upgrade(empty_database_url)
    assert migrate.current_revision(engine) == migrate.head_revision()
    engine.dispose()


def test_one_open_incident_per_model(engine: Engine) -> None:
    with Session(engine) as session:
        session.add(Incident(model="fraud", title="first"))
        session.commit()
        session.add(Incident(model="fraud", title="second"))
        with pytest.raises(IntegrityError):
            session.commit()
        session.rollback()
        first = session.get(Incident, 1)
        assert first is not None
        first.status = IncidentStatus.RESOLVED
        session.add(first)
        session.add(Incident(model="fraud", title="after the first resolved"))
        session.commit()


def test_one_active_run_per_model(engine: Engine) -> None:
    def run(status: str) -> RunbookRun:
        return RunbookRun(
            model="fraud", runbook="immediate", plan_hash="h", to_version="4", status=status
        )

    with Session(engine) as session:
        session.add(run(RunStatus.RUNNING))
        session.commit()
        session.add(run(RunStatus.PENDING))
        with pytest.raises(IntegrityError):
            session.commit()
        session.rollback()
        session.add(run(RunStatus.SUCCEEDED))
        session.add(run(RunStatus.FAILED))
        session.commit()


def test_timestamps_come_back_timezone_aware(engine: Engine) -> None:
    with Session(engine) as session:
        session.add(Incident(model="fraud", title="t"))
        session.commit()
    with Session(engine) as session:
        incident = session.get(Incident, 1)
        assert incident is not None
        assert incident.created_at.utcoffset() is not None
