"""A person corrects a key time: the correction is on the timeline and moves the durations."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot.errors import NotFoundError
from bot.incidents import service as incidents
from bot.postmortem.flows import build_facts, correct_key_time, render_document
from bot.store.models import TimelineEvent
from bot.timeline import verify_chains
from tests.postmortem.builders import GENERATED_AT, at, record_incident


def _durations(session: Session, incident_id: int) -> dict[str, float | None]:
    facts = build_facts(session, incident_id=incident_id, now=GENERATED_AT)
    return {fact.label: fact.seconds for fact in facts.durations}


def _events(session: Session) -> list[TimelineEvent]:
    return list(session.exec(select(TimelineEvent)).all())


def test_a_correction_lands_on_the_timeline_and_changes_the_durations(engine: Engine) -> None:
    with Session(engine) as session:
        incident_id = record_incident(session).incident_id
        assert _durations(session, incident_id)["Time to detect"] == 8 * 60
        key = correct_key_time(
            session,
            incident_id=incident_id,
            key="degraded",
            at="2026-03-01T10:00:30Z",
            actor="alice",
            source="web",
            reason="the dashboard shows errors from 10:00:30",
        )
        session.commit()
        assert key == "degraded_at"
        durations = _durations(session, incident_id)
        assert durations["Time to detect"] == 9 * 60 + 30
        facts = build_facts(session, incident_id=incident_id, now=GENERATED_AT)
        (event,) = [e for e in facts.timeline if e.kind == "incident.time_corrected"]
        assert event.actor == "alice"
        assert "the dashboard shows errors from 10:00:30" in event.summary
        (degraded,) = [k for k in facts.key_times if k.key == "degraded_at"]
        assert degraded.at == datetime(2026, 3, 1, 10, 0, 30, tzinfo=UTC)
        assert degraded.correction is not None and "corrected by alice" in degraded.correction
        assert "corrected by alice" in render_document(facts, format="md")
        assert verify_chains(session) == []


def test_a_time_set_out_of_order_is_flagged_not_shown_as_negative(engine: Engine) -> None:
    with Session(engine) as session:
        incident_id = record_incident(session).incident_id
        correct_key_time(
            session,
            incident_id=incident_id,
            key="acknowledged_at",
            at=at(5),
            actor="alice",
            source="cli",
        )
        facts = build_facts(session, incident_id=incident_id, now=GENERATED_AT)
    (ack,) = [d for d in facts.durations if d.label == "Time to acknowledge"]
    assert ack.seconds is None
    assert ack.why_missing == "the key times are out of order; worth checking and correcting"


@pytest.mark.parametrize(
    ("key", "moment", "message"),
    [
        ("noticed", "2026-03-01T10:00:00Z", "unknown key time 'noticed'; one of degraded, det"),
        ("detected", "yesterday", "'yesterday' is not an ISO 8601 time"),
        ("detected", "2026-03-01T10:00:00", "has no timezone"),
    ],
)
def test_a_bad_correction_says_why_and_changes_nothing(
    engine: Engine, key: str, moment: str, message: str
) -> None:
    with Session(engine) as session:
        incident_id = record_incident(session).incident_id
        before = len(_events(session))
        with pytest.raises(ValueError, match=message):
            correct_key_time(
                session, incident_id=incident_id, key=key, at=moment, actor="alice", source="web"
            )
        session.commit()
        assert len(_events(session)) == before
        assert incidents.get(session, incident_id=incident_id).detected_at == at(10)


def test_a_correction_of_an_unknown_incident_is_not_found(engine: Engine) -> None:
    with Session(engine) as session, pytest.raises(NotFoundError):
        correct_key_time(
            session,
            incident_id=7,
            key="detected",
            at="2026-03-01T10:00:00Z",
            actor="a",
            source="cli",
        )
