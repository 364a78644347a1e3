"""Resuming after a crash: reconcile the interrupted step, re-check the approval."""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy.engine import Engine
from sqlmodel import select

from bot.runs.engine import RunEngine
from bot.runs.service import create_run, request_abort, run_status
from bot.store import session_scope
from bot.store.models import ApprovalRequest, RunbookRun, StepRun, TimelineEvent
from tests.runs.fakes import (
    START,
    Clock,
    Effects,
    FakeAction,
    approval,
    make_engine,
    new_drill,
    plan,
    step,
)


def crash_during_first_step(db: Engine, run_id: int) -> str:
    """Leave the run as a worker killed inside step 0 would: step running, lease held."""
    key = f"run-{run_id}-step-forward-0-attempt-1"
    with session_scope(db) as session:
        run = session.get(RunbookRun, run_id)
        assert run is not None
        run.status, run.started_at = "running", START
        run.claimed_by, run.lease_expires_at = "dead-worker", START + timedelta(minutes=5)
        first = session.exec(
            select(StepRun).where(StepRun.run_id == run_id, StepRun.position == 0)
        ).one()
        first.state, first.attempt, first.idempotency_key = "running", 1, key
        first.started_at = START
        session.add_all([run, first])
    return key


def test_an_interrupted_step_already_applied_is_not_applied_again(
    engine: Engine, apply: FakeAction, effects: Effects
) -> None:
    run_id = new_drill(engine, plan(step("shift"), step("check")))
    key = crash_during_first_step(engine, run_id)
    effects.applied["shift"] = [key]  # the dead worker's call did land
    clock = Clock(START + timedelta(minutes=6))

    [progress] = make_engine(engine, {"fake.apply": apply}, clock=clock).resume_unfinished()

    assert progress.status == "succeeded"
    assert effects.count("shift") == 1 and effects.count("check") == 1
    assert apply.reconcile_calls == 1
    with session_scope(engine) as session:
        first = run_status(session, run_id=run_id).steps[0]
        event = session.exec(
            select(TimelineEvent).where(TimelineEvent.kind == "step.succeeded")
        ).first()
    assert (first.state, first.attempt, first.output) == (
        "succeeded",
        1,
        {"effect": "shift", "reconciled": True},
    )
    assert event is not None and "found already in place after a restart" in event.summary


def test_an_interrupted_step_not_applied_is_applied_once_with_the_same_key(
    engine: Engine, apply: FakeAction, effects: Effects
) -> None:
    run_id = new_drill(engine, plan(step("shift"), step("check")))
    key = crash_during_first_step(engine, run_id)
    clock = Clock(START + timedelta(minutes=6))

    [progress] = make_engine(engine, {"fake.apply": apply}, clock=clock).resume_unfinished()

    assert progress.status == "succeeded"
    assert effects.applied["shift"] == [key]
    with session_scope(engine) as session:
        assert run_status(session, run_id=run_id).steps[0].attempt == 2


def test_a_crashed_run_waits_for_the_dead_workers_lease(engine: Engine, apply: FakeAction) -> None:
    run_id = new_drill(engine, plan(step("shift")))
    crash_during_first_step(engine, run_id)

    assert make_engine(engine, {"fake.apply": apply}).resume_unfinished() == []
    assert apply.calls == [] and apply.reconcile_calls == 0


def approved_run(db: Engine) -> tuple[int, int]:
    the_plan = plan(step("alias"), step("shift"))
    with session_scope(db) as session:
        request_id = approval(session, the_plan)
        run = create_run(
            session,
            plan=the_plan,
            incident_id=None,
            approval_request_id=request_id,
            requested_by="U-alice",
        )
        assert run.id is not None
        return run.id, request_id


def test_an_approval_withdrawn_before_the_first_step_stops_the_run(
    engine: Engine, apply: FakeAction
) -> None:
    run_id, request_id = approved_run(engine)
    with session_scope(engine) as session:
        request = session.get(ApprovalRequest, request_id)
        assert request is not None
        request.status = "cancelled"
        session.add(request)

    progress = make_engine(engine, {"fake.apply": apply}).execute(run_id)

    assert progress.status == "failed"
    assert apply.calls == []
    with session_scope(engine) as session:
        view = run_status(session, run_id=run_id)
        kinds = [e.kind for e in session.exec(select(TimelineEvent)).all()]
    assert view.error == (
        f"approval no longer valid: approval request #{request_id} is cancelled, not approved"
    )
    assert [s.state for s in view.steps] == ["skipped", "skipped"]
    assert kinds == ["run.created", "run.failed"]


def test_an_approval_for_another_plan_stops_a_resumed_run(
    engine: Engine, apply: FakeAction, effects: Effects
) -> None:
    run_id, request_id = approved_run(engine)
    crash_during_first_step(engine, run_id)
    with session_scope(engine) as session:
        request = session.get(ApprovalRequest, request_id)
        assert request is not None
        request.plan_hash = "0" * 64
        session.add(request)

    clock = Clock(START + timedelta(minutes=6))
    [progress] = make_engine(engine, {"fake.apply": apply}, clock=clock).resume_unfinished()

    assert progress.status == "failed"
    assert apply.calls == [] and apply.reconcile_calls == 0
    with session_scope(engine) as session:
        view = run_status(session, run_id=run_id)
    assert view.error is not None and "was given for a different plan" in view.error
    assert [s.state for s in view.steps] == ["failed", "skipped"]


def test_an_approved_run_executes(engine: Engine, apply: FakeAction, effects: Effects) -> None:
    run_id, _ = approved_run(engine)

    assert make_engine(engine, {"fake.apply": apply}).execute(run_id).status == "succeeded"
    assert effects.order() == ["alias", "shift"]


def test_two_workers_resuming_at_once_execute_each_run_once(engine: Engine) -> None:
    effects = Effects()
    apply = FakeAction("fake.apply", effects)
    run_ids = [new_drill(engine, plan(step(f"shift-{m}"), model=m)) for m in ("a", "b", "c")]
    workers = [make_engine(engine, {"fake.apply": apply}, worker_id=w) for w in ("w1", "w2")]
    barrier = threading.Barrier(len(workers))
    finished: list[int] = []

    def resume(runner: RunEngine) -> None:
        barrier.wait()
        finished.extend(p.run_id for p in runner.resume_unfinished())

    threads = [threading.Thread(target=resume, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert sorted(finished) == sorted(run_ids)
    assert sorted(effects.order()) == ["shift-a", "shift-b", "shift-c"]
    assert all(effects.count(name) == 1 for name in effects.order())


def test_an_abort_after_a_crash_undoes_the_interrupted_step_too(
    engine: Engine, apply: FakeAction, effects: Effects
) -> None:
    run_id = new_drill(engine, plan(step("shift", undo="undo-shift"), step("check")))
    key = crash_during_first_step(engine, run_id)
    effects.applied["shift"] = [key]  # the dead worker's call did land
    with session_scope(engine) as session:
        request_abort(session, run_id=run_id, actor="UBOB")
    clock = Clock(START + timedelta(minutes=6))

    [progress] = make_engine(engine, {"fake.apply": apply}, clock=clock).resume_unfinished()

    assert progress.status == "aborted"
    assert effects.count("undo-shift") == 1 and effects.count("check") == 0
    with session_scope(engine) as session:
        steps = [(s.phase, s.name, s.state) for s in run_status(session, run_id=run_id).steps]
    assert steps == [
        ("forward", "shift", "skipped"),
        ("forward", "check", "skipped"),
        ("compensation", "undo-shift", "succeeded"),
    ]
