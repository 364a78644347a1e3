"""Incident operations: one open incident per model, and every change on the timeline."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot.errors import ConflictError
from bot.incidents import service
from bot.store.models import Incident, IncidentStatus, TimelineEvent
from bot.timeline import verify_chains


def _kinds(session: Session, incident_id: int | None) -> list[str]:
    events = session.exec(
        select(TimelineEvent)
        .where(TimelineEvent.incident_id == incident_id)
        .order_by(col(TimelineEvent.seq))
    )
    return [event.kind for event in events]


def test_open_or_join_opens_once_then_joins(engine: Engine) -> None:
    with Session(engine) as session:
        first, opened = service.open_or_join(
            session, model="fraud", title="error rate", actor=None, source="detector"
        )
        second, opened_again = service.open_or_join(
            session, model="fraud", title="alert", actor=None, source="alertmanager"
        )
        session.commit()
        assert (opened, opened_again) == (True, False)
        assert first.id == second.id
        assert _kinds(session, first.id) == ["incident.opened"]


def test_concurrent_openers_share_one_incident(engine: Engine) -> None:
    ids: list[int] = []
    barrier = threading.Barrier(6)

    def open_one() -> None:
        with Session(engine) as session:
            barrier.wait()
            incident, _ = service.open_or_join(
                session, model="fraud", title="storm", actor=None, source="alertmanager"
            )
            session.commit()
            assert incident.id is not None
            ids.append(incident.id)

    threads = [threading.Thread(target=open_one) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(ids)) == 1
    with Session(engine) as session:
        assert len(session.exec(select(Incident)).all()) == 1
        assert _kinds(session, ids[0]) == ["incident.opened"]


def test_declaring_for_a_model_with_an_open_incident_is_a_conflict(engine: Engine) -> None:
    with Session(engine) as session:
        existing = service.declare(session, title="slow", actor="U1", source="slack", model="fraud")
        session.commit()
        with pytest.raises(
            ConflictError, match=rf"fraud already has an open incident: #{existing.id}"
        ):
            service.declare(session, title="again", actor="U2", source="slack", model="fraud")


def test_lifecycle_records_every_change_and_resolves(engine: Engine) -> None:
    with Session(engine) as session:
        incident = service.declare(session, title="drift", actor="U1", source="slack")
        service.set_severity(
            session, incident=incident, severity="sev1", actor="U1", source="slack"
        )
        service.set_status(
            session, incident=incident, status=IncidentStatus.MITIGATING, actor=None, source="bot"
        )
        service.add_note(
            session, incident=incident, text="  rolled back by hand ", actor="U2", source="slack"
        )
        service.resolve(session, incident=incident, actor="U1", source="slack", summary="recovered")
        session.commit()
        assert incident.status == IncidentStatus.RESOLVED
        assert incident.resolved_at is not None
        assert _kinds(session, incident.id) == [
            "incident.opened",
            "incident.severity",
            "incident.status",
            "note",
            "incident.resolved",
        ]
        note = session.exec(select(TimelineEvent).where(TimelineEvent.kind == "note")).one()
        assert note.summary == "rolled back by hand"
        with pytest.raises(ConflictError, match="already resolved"):
            service.set_severity(
                session, incident=incident, severity="sev2", actor="U1", source="slack"
            )
        assert verify_chains(session) == []


def test_bad_values_are_refused_without_writing(engine: Engine) -> None:
    with Session(engine) as session:
        incident = service.declare(session, title="x", actor="U1", source="slack")
        session.commit()
        with pytest.raises(ValueError, match="unknown severity 'critical'"):
            service.set_severity(
                session, incident=incident, severity="critical", actor="U1", source="slack"
            )
        with pytest.raises(ValueError, match="needs some text"):
            service.add_note(session, incident=incident, text="   ", actor="U1", source="slack")
        assert _kinds(session, incident.id) == ["incident.opened"]


def test_a_corrected_key_time_is_itself_an_event(engine: Engine) -> None:
    corrected = datetime(2026, 11, 21, 3, 4, 5, tzinfo=UTC)
    with Session(engine) as session:
        incident, _ = service.open_or_join(
            session, model="fraud", title="t", actor=None, source="detector"
        )
        service.mark_time(session, incident=incident, key="detected_at")
        assert not service.mark_time(session, incident=incident, key="detected_at")
        service.correct_time(
            session,
            incident=incident,
            key="degraded_at",
            at=corrected,
            actor="U1",
            source="cli",
            reason="the dashboard shows the errors began earlier",
        )
        session.commit()
        incident_id = incident.id
    with Session(engine) as session:
        stored = session.get(Incident, incident_id)
        assert stored is not None and stored.degraded_at == corrected
        event = session.exec(
            select(TimelineEvent).where(TimelineEvent.kind == "incident.time_corrected")
        ).one()
        assert event.details["to"] == corrected.isoformat()
        assert event.details["from"] is None
        assert event.actor == "U1"


def test_the_first_act_of_a_person_acknowledges_but_the_bots_acts_do_not(engine: Engine) -> None:
    with Session(engine) as session:
        incident, _ = service.open_or_join(
            session, model="fraud", title="t", actor=None, source="detector"
        )
        service.add_note(session, incident=incident, text="from a watch", actor=None, source="bot")
        assert incident.acknowledged_at is None
        service.add_note(session, incident=incident, text="looking", actor="U2", source="slack")
        first = incident.acknowledged_at
        service.set_severity(session, incident=incident, severity="sev2", actor="U3", source="cli")
        session.commit()
        assert first is not None and incident.acknowledged_at == first
        events = session.exec(
            select(TimelineEvent).where(TimelineEvent.kind == "incident.acknowledged")
        ).all()
        assert [(e.actor, e.source) for e in events] == [("U2", "slack")]


@pytest.mark.parametrize("model", [None, "fraud"], ids=["no-model", "model"])
def test_a_declared_incident_was_detected_and_acknowledged_when_declared(
    engine: Engine, model: str | None
) -> None:
    with Session(engine) as session:
        incident = service.declare(
            session, title="scores look off", actor="U1", source="slack", model=model
        )
        session.commit()
        assert incident.detected_at == incident.created_at
        assert incident.acknowledged_at == incident.created_at
