"""Creating runs, one active run per model, approvals, aborts and the status view."""

from __future__ import annotations

import pytest
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from bot.errors import ConflictError, NotFoundError, PolicyViolation
from bot.runs.contracts import Plan
from bot.runs.service import active_run_for_model, create_run, request_abort, run_status
from bot.store import session_scope
from bot.store.models import (
    ApprovalDecision,
    RunbookRun,
    StepRun,
    TimelineEvent,
)
from tests.runs.fakes import FakeAction, approval, make_engine, new_drill, plan, step


def counts(db: Engine) -> tuple[int, int, int]:
    with session_scope(db) as session:
        return tuple(  # type: ignore[return-value]
            session.scalar(select(func.count()).select_from(table)) or 0
            for table in (RunbookRun, StepRun, TimelineEvent)
        )


def test_create_run_stores_the_plan_and_one_pending_step_per_plan_step(engine: Engine) -> None:
    the_plan = plan(step("alias"), step("shift", undo="unshift"))
    with session_scope(engine) as session:
        request_id = approval(session, the_plan)
        run = create_run(
            session,
            plan=the_plan,
            incident_id=None,
            approval_request_id=request_id,
            requested_by="U-alice",
        )
    with session_scope(engine) as session:
        stored = session.get(RunbookRun, run.id)
        assert stored is not None
        assert Plan.model_validate(stored.plan) == the_plan
        assert stored.plan_hash == the_plan.hash() and stored.status == "pending"
        view = run_status(session, run_id=stored.id or 0)
        event = session.exec(select(TimelineEvent)).one()
    assert [(s.phase, s.position, s.name, s.state) for s in view.steps] == [
        ("forward", 0, "alias", "pending"),
        ("forward", 1, "shift", "pending"),
    ]
    assert event.kind == "run.created" and event.actor == "U-alice"
    assert "fraud-detector 4 → 3" in event.summary


def test_second_active_run_for_a_model_is_a_conflict_and_creates_nothing(engine: Engine) -> None:
    first = new_drill(engine, plan(step("alias")))
    before = counts(engine)

    with pytest.raises(ConflictError) as raised:
        new_drill(engine, plan(step("other")))

    assert str(raised.value) == (
        f"fraud-detector already has an active rollback: run #{first} (pending)"
    )
    assert counts(engine) == before
    with session_scope(engine) as session:
        active = active_run_for_model(session, model="fraud-detector")
        assert active is not None and active.id == first


def test_the_database_refuses_a_second_active_run_even_past_the_check(engine: Engine) -> None:
    new_drill(engine, plan(step("alias")))
    with (
        pytest.raises(IntegrityError),
        session_scope(engine) as session,
    ):
        session.add(RunbookRun(model="fraud-detector", runbook="r", plan_hash="x", to_version="3"))


def test_a_model_is_free_again_once_its_run_finished(engine: Engine, apply: FakeAction) -> None:
    first = new_drill(engine, plan(step("alias")))
    make_engine(engine, {"fake.apply": apply}).execute(first)

    second = new_drill(engine, plan(step("alias")))

    assert second != first


@pytest.mark.parametrize(
    ("status", "hash_matches", "message"),
    [
        ("pending", True, "is pending, not approved"),
        ("cancelled", True, "is cancelled, not approved"),
        ("approved", False, "was given for a different plan"),
    ],
)
def test_a_run_needs_a_valid_approval(
    engine: Engine, status: str, hash_matches: bool, message: str
) -> None:
    the_plan = plan(step("alias"))
    approved_plan = the_plan if hash_matches else plan(step("alias"), to_version="2")
    with session_scope(engine) as session:
        request_id = approval(session, approved_plan, status=status)
    before = counts(engine)

    with (
        pytest.raises(PolicyViolation, match=f"approval no longer valid: .*{message}"),
        session_scope(engine) as session,
    ):
        create_run(
            session,
            plan=the_plan,
            incident_id=None,
            approval_request_id=request_id,
            requested_by="U-alice",
        )

    assert counts(engine) == before


def test_an_approved_status_without_its_approvals_starts_nothing(engine: Engine) -> None:
    the_plan = plan(step("alias"))
    with session_scope(engine) as session:
        request_id = approval(session, the_plan)
        for decision in session.exec(select(ApprovalDecision)).all():
            session.delete(decision)  # the row says approved; nobody did
    before = counts(engine)

    with (
        pytest.raises(PolicyViolation, match="has 0 of the 1 approvals its policy demands"),
        session_scope(engine) as session,
    ):
        create_run(
            session,
            plan=the_plan,
            incident_id=None,
            approval_request_id=request_id,
            requested_by="U-alice",
        )

    assert counts(engine) == before


def test_a_real_run_without_approval_is_refused(engine: Engine) -> None:
    with (
        pytest.raises(PolicyViolation, match="has no approval request"),
        session_scope(engine) as session,
    ):
        create_run(
            session,
            plan=plan(step("alias")),
            incident_id=None,
            approval_request_id=None,
            requested_by="U-alice",
        )
    assert counts(engine) == (0, 0, 0)


def test_request_abort_is_recorded_once(engine: Engine) -> None:
    run_id = new_drill(engine, plan(step("alias")))
    for _ in range(2):
        with session_scope(engine) as session:
            run = request_abort(session, run_id=run_id, actor="U-bob")
            assert run.abort_requested and run.abort_requested_by == "U-bob"
    with session_scope(engine) as session:
        events = session.exec(
            select(TimelineEvent).where(TimelineEvent.kind == "run.abort_requested")
        ).all()
    assert len(events) == 1 and events[0].actor == "U-bob"


def test_abort_of_a_finished_or_unknown_run_says_why(engine: Engine, apply: FakeAction) -> None:
    run_id = new_drill(engine, plan(step("alias")))
    make_engine(engine, {"fake.apply": apply}).execute(run_id)
    before = counts(engine)

    with (
        pytest.raises(ConflictError, match=f"run #{run_id} has already finished \\(succeeded\\)"),
        session_scope(engine) as session,
    ):
        request_abort(session, run_id=run_id, actor="U-bob")
    with (
        pytest.raises(NotFoundError, match="runbook run #999 does not exist"),
        session_scope(engine) as session,
    ):
        request_abort(session, run_id=999, actor="U-bob")

    assert counts(engine) == before
