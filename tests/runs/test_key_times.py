"""A run marks mitigation and verification on its incident and records what serves now."""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlmodel import select

from bot.errors import RollbotError
from bot.incidents import service as incidents
from bot.runs.contracts import Plan
from bot.runs.service import create_run
from bot.store import session_scope
from bot.store.models import DeploymentRecord, Incident, TimelineEvent
from integrations.errors import IntegrationUnavailable
from tests.runs.fakes import START, Clock, Effects, FakeAction, approval, make_engine, plan, step

SHIFT, VERIFY = "deployer.shift_traffic", "verify"


def rollback_plan() -> Plan:
    return plan(
        step("canary", action=SHIFT, version="3", percent=50),
        step("features", action=SHIFT, version="7", component="feature-pipeline"),
        step("full", action=SHIFT, version="3", percent=100),
        step("check", action=VERIFY),
    )


def start(db: Engine, the_plan: Plan) -> tuple[int, int]:
    with session_scope(db) as session:
        incident, _ = incidents.open_or_join(
            session, model="fraud-detector", title="AUC dropped", actor=None, source="watch"
        )
        run = create_run(
            session,
            plan=the_plan,
            incident_id=incident.id,
            approval_request_id=approval(session, the_plan),
            requested_by="U-alice",
        )
        assert run.id is not None and incident.id is not None
        return run.id, incident.id


def test_full_shift_and_later_check_mark_the_incident(engine: Engine, effects: Effects) -> None:
    run_id, incident_id = start(engine, rollback_plan())
    actions = {SHIFT: FakeAction(SHIFT, effects), VERIFY: FakeAction(VERIFY, effects)}

    make_engine(engine, actions, clock=Clock()).execute(run_id)

    with session_scope(engine) as session:
        incident = session.get(Incident, incident_id)
        records = session.exec(select(DeploymentRecord)).all()
    assert incident is not None
    assert incident.mitigated_at == START and incident.verified_at == START
    assert sorted((r.component, r.version, r.run_id) for r in records) == [
        ("feature-pipeline", "7", run_id),
        ("model", "3", run_id),
    ]
    assert all(r.reason == "rollback" and r.incident_id == incident_id for r in records)


def test_a_check_before_the_full_shift_does_not_count_as_verification(
    engine: Engine, effects: Effects
) -> None:
    the_plan = plan(
        step("check", action=VERIFY), step("canary", action=SHIFT, version="3", percent=50)
    )
    run_id, incident_id = start(engine, the_plan)
    actions = {SHIFT: FakeAction(SHIFT, effects), VERIFY: FakeAction(VERIFY, effects)}

    make_engine(engine, actions).execute(run_id)

    with session_scope(engine) as session:
        incident = session.get(Incident, incident_id)
        assert session.exec(select(DeploymentRecord)).all() == []
    assert incident is not None
    assert incident.mitigated_at is None and incident.verified_at is None


def test_a_failed_check_after_the_full_shift_keeps_the_rollback_and_escalates(
    engine: Engine, effects: Effects
) -> None:
    the_plan = plan(
        step("full", action=SHIFT, version="3", percent=100, undo="restore-4"),
        step("check", action=VERIFY, attempts=1),
    )
    run_id, incident_id = start(engine, the_plan)
    still_bad = RollbotError("error rate 9% above 5% for the whole hold")
    actions = {
        SHIFT: FakeAction(SHIFT, effects),
        "fake.apply": FakeAction("fake.apply", effects),  # the undo, which must not run
        VERIFY: FakeAction(VERIFY, effects, failures=[still_bad]),
    }

    progress = make_engine(engine, actions).execute(run_id)

    assert progress.status == "failed"
    assert effects.count("restore-4") == 0  # the degraded version is not put back
    with session_scope(engine) as session:
        incident = session.get(Incident, incident_id)
        kinds = [e.kind for e in session.exec(select(TimelineEvent))]
    assert incident is not None and incident.severity == "sev2"
    assert incident.mitigated_at == START and incident.verified_at is None
    assert "incident.escalated" in kinds and "run.compensating" not in kinds


def test_undoing_the_full_shift_clears_the_mitigation_time(
    engine: Engine, effects: Effects
) -> None:
    refused = IntegrationUnavailable(
        "HTTP 503", integration="mlflow", operation="alias", target="x"
    )
    the_plan = plan(
        step("full", action=SHIFT, version="3", percent=100, undo="restore-4"),
        step("alias", action="fake.broken", attempts=1),
    )
    run_id, incident_id = start(engine, the_plan)
    actions = {
        SHIFT: FakeAction(SHIFT, effects),
        "fake.apply": FakeAction("fake.apply", effects),  # the undo
        "fake.broken": FakeAction("fake.broken", effects, failures=[refused]),
    }

    progress = make_engine(engine, actions).execute(run_id)

    assert progress.status == "failed" and effects.count("restore-4") == 1
    with session_scope(engine) as session:
        incident = session.get(Incident, incident_id)
        kinds = [e.kind for e in session.exec(select(TimelineEvent))]
    assert incident is not None and incident.mitigated_at is None
    assert "incident.unmitigated" in kinds
