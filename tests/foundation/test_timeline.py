"""The timeline is append-only and tamper-evident."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot.store.models import Incident, TimelineEvent
from bot.timeline import record_event, verify_chains


def _incident(engine: Engine) -> int:
    with Session(engine) as session:
        incident = Incident(model="fraud", title="fraud error rate")
        session.add(incident)
        session.commit()
        assert incident.id is not None
        return incident.id


def _append(engine: Engine, incident_id: int | None, count: int) -> None:
    with Session(engine) as session:
        for n in range(count):
            record_event(
                session,
                incident_id=incident_id,
                kind="note",
                source="test",
                actor="U1",
                summary=f"note {n}",
                details={"n": n, "ratio": 0.1},
            )
        session.commit()


def test_events_chain_and_verify(engine: Engine) -> None:
    incident_id = _incident(engine)
    _append(engine, incident_id, 3)
    _append(engine, None, 2)
    with Session(engine) as session:
        events = session.exec(select(TimelineEvent).order_by(TimelineEvent.id)).all()
        assert [e.seq for e in events] == [1, 2, 3, 1, 2]
        assert events[1].prev_hash == events[0].hash
        assert verify_chains(session) == []


def test_an_edited_event_is_named(engine: Engine) -> None:
    incident_id = _incident(engine)
    _append(engine, incident_id, 3)
    with engine.begin() as connection:
        connection.execute(text("UPDATE timeline_event SET summary = 'rewritten' WHERE seq = 2"))
    with Session(engine) as session:
        broken = verify_chains(session)
    assert len(broken) == 1
    assert broken[0].seq == 2
    assert "edited after writing" in broken[0].describe()


def test_a_deleted_event_is_named(engine: Engine) -> None:
    _append(engine, None, 3)
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM timeline_event WHERE seq = 2"))
    with Session(engine) as session:
        (broken,) = verify_chains(session)
    assert broken.seq == 3
    assert "deleted" in broken.reason


def test_concurrent_appenders_keep_one_unbroken_chain(engine: Engine) -> None:
    incident_id = _incident(engine)
    threads = [threading.Thread(target=_append, args=(engine, incident_id, 10)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with Session(engine) as session:
        seqs = session.exec(select(TimelineEvent.seq).order_by(TimelineEvent.seq)).all()
        assert list(seqs) == list(range(1, 41))
        assert verify_chains(session) == []


def test_audit_verify_command_fails_and_names_the_event(engine: Engine, database_url: str) -> None:
    _append(engine, None, 2)
    rollbot = str(Path(sys.executable).with_name("rollbot"))
    env = {"DATABASE_URL": database_url, "PATH": "/usr/bin:/bin"}
    ok = subprocess.run([rollbot, "audit", "verify"], env=env, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "timeline intact: 2 events verified" in ok.stdout
    with engine.begin() as connection:
        event_id = connection.execute(text("SELECT id FROM timeline_event WHERE seq = 1")).scalar()
        connection.execute(text("UPDATE timeline_event SET actor = 'someone else' WHERE seq = 1"))
    bad = subprocess.run([rollbot, "audit", "verify"], env=env, capture_output=True, text=True)
    assert bad.returncode == 1
    assert bad.stderr.strip() == (
        f"rollbot: audit failed: timeline event {event_id} (global #1): "
        "content does not match its hash (edited after writing)"
    )
