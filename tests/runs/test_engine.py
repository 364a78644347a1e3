"""The engine executes plans step by step, retries, compensates and honours aborts."""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy.engine import Engine
from sqlmodel import col, select

from bot.errors import ConfigError
from bot.runs import leases
from bot.runs.contracts import OnFailure
from bot.runs.engine import RunEngine
from bot.runs.retry import MAX_RETRY_AFTER_SECONDS
from bot.runs.service import request_abort, run_status
from bot.store import session_scope
from bot.store.models import TimelineEvent
from integrations.errors import AuthFailed, IntegrationUnavailable, RateLimited
from tests.runs.fakes import (
    Clock,
    Effects,
    FakeAction,
    RecordingObserver,
    make_engine,
    new_drill,
    plan,
    step,
)


def kinds(db: Engine, run_id: int) -> list[str]:
    with session_scope(db) as session:
        events = session.exec(select(TimelineEvent).order_by(col(TimelineEvent.id))).all()
        return [e.kind for e in events if e.details.get("run_id") == run_id]


def states(db: Engine, run_id: int) -> list[tuple[str, str, str, int]]:
    with session_scope(db) as session:
        view = run_status(session, run_id=run_id)
    return [(s.phase, s.name, s.state, s.attempt) for s in view.steps]


def test_happy_path_runs_every_step_once_in_order(
    engine: Engine, apply: FakeAction, effects: Effects
) -> None:
    run_id = new_drill(engine, plan(step("alias"), step("shift"), step("check")))
    observer = RecordingObserver()

    progress = make_engine(engine, {"fake.apply": apply}, observer=observer).execute(run_id)

    assert progress.finished and progress.status == "succeeded"
    assert effects.order() == ["alias", "shift", "check"]
    assert apply.calls == [
        f"run-{run_id}-step-forward-0-attempt-1",
        f"run-{run_id}-step-forward-1-attempt-1",
        f"run-{run_id}-step-forward-2-attempt-1",
    ]
    assert states(engine, run_id) == [
        ("forward", "alias", "succeeded", 1),
        ("forward", "shift", "succeeded", 1),
        ("forward", "check", "succeeded", 1),
    ]
    assert kinds(engine, run_id) == [
        "run.created",
        "run.started",
        *["step.started", "step.succeeded"] * 3,
        "run.succeeded",
    ]
    assert observer.events[-1] == "run succeeded"
    with session_scope(engine) as session:
        view = run_status(session, run_id=run_id)
    assert view.steps[0].output["effect"] == "alias"
    assert view.steps[0].duration_seconds == 0.0
    assert view.finished_at is not None and not view.active


def test_finished_run_is_never_run_again(engine: Engine, apply: FakeAction) -> None:
    run_id = new_drill(engine, plan(step("one")))
    runner = make_engine(engine, {"fake.apply": apply})
    runner.execute(run_id)

    again = runner.execute(run_id)

    assert again.status == "succeeded"
    assert len(apply.calls) == 1


def test_retryable_failures_back_off_then_succeed(
    engine: Engine, apply: FakeAction, effects: Effects
) -> None:
    down = IntegrationUnavailable("HTTP 503", integration="kserve", operation="patch", target="x")
    apply.failures = [down, down]
    run_id = new_drill(engine, plan(step("shift", attempts=3)))
    sleeps: list[float] = []

    progress = make_engine(engine, {"fake.apply": apply}, sleeps=sleeps).execute(run_id)

    assert progress.status == "succeeded"
    assert len(apply.calls) == 3 and effects.count("shift") == 1
    # Full jitter takes the cap here: 2s, then doubled.
    assert sleeps == [2.0, 4.0]
    # A definite failure frees the key: each attempt carries its own.
    assert apply.calls == [f"run-{run_id}-step-forward-0-attempt-{n}" for n in (1, 2, 3)]
    assert states(engine, run_id) == [("forward", "shift", "succeeded", 3)]
    assert kinds(engine, run_id).count("step.retrying") == 2
    with session_scope(engine) as session:
        retry = session.exec(
            select(TimelineEvent).where(TimelineEvent.kind == "step.retrying")
        ).first()
    assert retry is not None and "kserve patch x: HTTP 503" in retry.summary


def test_backoff_is_capped_and_jittered(engine: Engine, apply: FakeAction) -> None:
    down = IntegrationUnavailable("HTTP 503", integration="kserve", operation="patch", target="x")
    apply.failures = [down] * 4
    run_id = new_drill(engine, plan(step("shift", attempts=5)))
    sleeps: list[float] = []
    caps: list[float] = []

    def half(cap: float) -> float:
        caps.append(cap)
        return cap / 2

    make_engine(engine, {"fake.apply": apply}, sleeps=sleeps, jitter=half).execute(run_id)

    assert caps == [2.0, 4.0, 5.0, 5.0]  # max_backoff_seconds is 5
    assert sleeps == [1.0, 2.0, 2.5, 2.5]


def test_retry_after_is_honoured(engine: Engine, apply: FakeAction) -> None:
    apply.failures = [
        RateLimited(
            "HTTP 429", integration="mlflow", operation="set_alias", target="m", retry_after=7.0
        )
    ]
    run_id = new_drill(engine, plan(step("alias")))
    sleeps: list[float] = []

    make_engine(engine, {"fake.apply": apply}, sleeps=sleeps, jitter=lambda cap: 0.0).execute(
        run_id
    )

    assert sleeps == [7.0]
    assert len(apply.calls) == 2


def test_a_step_that_overruns_its_timeout_is_retried_with_the_same_key(
    engine: Engine, apply: FakeAction, effects: Effects
) -> None:
    release = threading.Event()
    apply.block = release
    run_id = new_drill(engine, plan(step("shift", timeout=0.05)))
    try:
        progress = make_engine(engine, {"fake.apply": apply}).execute(run_id)
    finally:
        release.set()

    assert progress.status == "succeeded"
    key = f"run-{run_id}-step-forward-0-attempt-1"
    # The outcome of a timed-out call is unknown, so the retry repeats its key.
    assert apply.calls == [key, key]
    with session_scope(engine) as session:
        retry = session.exec(
            select(TimelineEvent).where(TimelineEvent.kind == "step.retrying")
        ).one()
    assert "did not finish within 0.05s" in retry.summary


def test_exhausted_retries_compensate_in_reverse_and_fail(
    engine: Engine, apply: FakeAction, effects: Effects
) -> None:
    down = IntegrationUnavailable("HTTP 503", integration="kserve", operation="patch", target="x")
    broken = FakeAction("fake.broken", effects, failures=[down] * 3)
    the_plan = plan(
        step("alias", undo="unalias"),
        step("tag"),  # nothing to undo
        step("shift-50", undo="unshift-50"),
        step("shift-100", action="fake.broken", undo="never", attempts=3),
        step("check"),
    )
    run_id = new_drill(engine, the_plan)

    progress = make_engine(engine, {"fake.apply": apply, "fake.broken": broken}).execute(run_id)

    assert progress.status == "failed"
    assert len(broken.calls) == 3
    assert effects.order() == ["alias", "tag", "shift-50", "unshift-50", "unalias"]
    assert states(engine, run_id) == [
        ("forward", "alias", "succeeded", 1),
        ("forward", "tag", "succeeded", 1),
        ("forward", "shift-50", "succeeded", 1),
        ("forward", "shift-100", "failed", 3),
        ("forward", "check", "skipped", 0),
        ("compensation", "unshift-50", "succeeded", 1),
        ("compensation", "unalias", "succeeded", 1),
    ]
    with session_scope(engine) as session:
        view = run_status(session, run_id=run_id)
        failed = session.exec(select(TimelineEvent).where(TimelineEvent.kind == "run.failed")).one()
    assert view.error == "step 'shift-100' failed: kserve patch x: HTTP 503"
    assert "shift-100" in failed.summary and "HTTP 503" in failed.summary
    assert kinds(engine, run_id)[-6:] == [
        "run.compensating",
        "step.started",
        "step.succeeded",
        "step.started",
        "step.succeeded",
        "run.failed",
    ]


def test_non_retryable_error_fails_at_once(
    engine: Engine, apply: FakeAction, effects: Effects
) -> None:
    apply.failures = [AuthFailed("HTTP 403", integration="mlflow", operation="x", target="m")]
    run_id = new_drill(engine, plan(step("alias", attempts=5), step("shift")))
    sleeps: list[float] = []

    progress = make_engine(engine, {"fake.apply": apply}, sleeps=sleeps).execute(run_id)

    assert progress.status == "failed"
    assert len(apply.calls) == 1 and sleeps == []
    assert effects.order() == []


def test_on_failure_compensate_undoes_the_failed_step_first(
    engine: Engine, apply: FakeAction, effects: Effects
) -> None:
    bad = AuthFailed("HTTP 403", integration="kserve", operation="patch", target="x")
    half_done = FakeAction("fake.half", effects, failures=[bad])
    the_plan = plan(
        step("alias", undo="unalias"),
        step("shift", action="fake.half", undo="unshift", on_failure=OnFailure.COMPENSATE),
    )
    run_id = new_drill(engine, the_plan)

    make_engine(engine, {"fake.apply": apply, "fake.half": half_done}).execute(run_id)

    assert effects.order() == ["alias", "unshift", "unalias"]


def test_on_failure_continue_goes_on_with_the_next_step(
    engine: Engine, apply: FakeAction, effects: Effects
) -> None:
    bad = AuthFailed("HTTP 403", integration="slack", operation="post", target="#inc")
    notify = FakeAction("fake.notify", effects, failures=[bad])
    the_plan = plan(
        step("announce", action="fake.notify", on_failure=OnFailure.CONTINUE),
        step("shift"),
    )
    run_id = new_drill(engine, the_plan)

    progress = make_engine(engine, {"fake.apply": apply, "fake.notify": notify}).execute(run_id)

    assert progress.status == "succeeded"
    assert effects.order() == ["shift"]
    assert states(engine, run_id)[0] == ("forward", "announce", "failed", 1)
    with session_scope(engine) as session:
        done = session.exec(
            select(TimelineEvent).where(TimelineEvent.kind == "run.succeeded")
        ).one()
    assert "announce" in done.summary


def test_abort_stops_after_the_current_step_and_compensates(
    engine: Engine, apply: FakeAction, effects: Effects
) -> None:
    run_id = new_drill(
        engine, plan(step("alias", undo="unalias"), step("shift", undo="unshift"), step("check"))
    )
    runner: RunEngine

    def abort_after_first(finished: object) -> None:
        if effects.order() == ["alias"]:
            with session_scope(engine) as session:
                runner.request_abort(session, run_id=run_id, actor="U-bob")

    observer = RecordingObserver(after_step=abort_after_first)
    runner = make_engine(engine, {"fake.apply": apply}, observer=observer)

    progress = runner.execute(run_id)

    assert progress.status == "aborted"
    assert effects.order() == ["alias", "unalias"]
    with session_scope(engine) as session:
        view = run_status(session, run_id=run_id)
    assert view.error == "aborted by U-bob"
    assert [s.state for s in view.steps] == ["succeeded", "skipped", "skipped", "succeeded"]
    assert "run.abort_requested" in kinds(engine, run_id)
    assert kinds(engine, run_id)[-1] == "run.aborted"


def test_unexpected_errors_keep_their_text_out_of_the_database(
    engine: Engine, apply: FakeAction
) -> None:
    apply.failures = [ValueError("password=hunter2 rejected")]
    run_id = new_drill(engine, plan(step("alias")))

    make_engine(engine, {"fake.apply": apply}).execute(run_id)

    with session_scope(engine) as session:
        view = run_status(session, run_id=run_id)
        texts = [e.summary + str(e.details) for e in session.exec(select(TimelineEvent)).all()]
    assert view.steps[0].error == "unexpected ValueError in fake.apply (details in the worker log)"
    assert not any("hunter2" in text for text in [*texts, view.error or ""])


def test_unknown_action_and_bad_parameters_fail_the_step(engine: Engine, effects: Effects) -> None:
    run_id = new_drill(engine, plan(step("alias", action="registry.nope")))

    progress = make_engine(engine, {}).execute(run_id)

    assert progress.status == "failed"
    with session_scope(engine) as session:
        assert run_status(session, run_id=run_id).steps[0].error == "unknown action 'registry.nope'"


def test_long_backoff_parks_the_run_until_the_retry_is_due(
    engine: Engine, apply: FakeAction, effects: Effects
) -> None:
    down = IntegrationUnavailable("HTTP 503", integration="kserve", operation="patch", target="x")
    apply.failures = [down]
    run_id = new_drill(engine, plan(step("shift")))
    clock = Clock()
    runner = make_engine(engine, {"fake.apply": apply}, clock=clock, max_inline_wait=1)

    parked = runner.execute(run_id)

    assert parked.status == "running" and parked.resume_at is not None
    assert (parked.resume_at - clock.now).total_seconds() == 2.0
    assert runner.resume_unfinished() == []  # not due yet
    clock.advance(2)
    [resumed] = runner.resume_unfinished()
    assert resumed.status == "succeeded"
    assert effects.count("shift") == 1


def test_a_run_held_by_a_live_worker_is_left_alone(
    engine: Engine, apply: FakeAction, effects: Effects
) -> None:
    run_id = new_drill(engine, plan(step("shift")))
    clock = Clock()
    # Worker "a" claims the run, then (as far as "b" can tell) is busy with it.
    with session_scope(engine) as session:
        assert leases.claim(
            session, run_id=run_id, worker_id="a", now=clock.now, lease=timedelta(minutes=5)
        )
    other = make_engine(engine, {"fake.apply": apply}, clock=clock, worker_id="b")

    assert other.execute(run_id).status == "pending"
    assert other.resume_unfinished() == []
    assert apply.calls == []
    clock.advance(301)  # a's lease has run out: it died
    assert [p.status for p in other.resume_unfinished()] == ["succeeded"]


def test_a_run_whose_integrations_cannot_be_built_fails_once_and_says_why(
    engine: Engine, apply: FakeAction, effects: Effects
) -> None:
    run_id = new_drill(engine, plan(step("shift")))

    def broken_context(run: object) -> object:
        raise ConfigError("rollbot.yaml:9: deployers.kserve.token_env: KSERVE_TOKEN is not set")

    runner = RunEngine(
        engine,
        actions={"fake.apply": apply},
        context_for=broken_context,  # type: ignore[arg-type]
        clock=Clock(),
        sleep=lambda _: None,
        worker_id="worker-a",
        lease=timedelta(minutes=5),
    )
    progress = runner.execute(run_id)

    assert progress.status == "failed"
    assert effects.count("shift") == 0
    with session_scope(engine) as session:
        view = run_status(session, run_id=run_id)
    assert view.error == (
        "cannot prepare the run: "
        "rollbot.yaml:9: deployers.kserve.token_env: KSERVE_TOKEN is not set"
    )
    assert kinds(engine, run_id)[-1] == "run.failed"
    assert runner.resume_unfinished() == []


def test_a_last_attempt_that_times_out_is_undone_after_its_late_call_returns(
    engine: Engine, apply: FakeAction, effects: Effects
) -> None:
    release = threading.Event()
    apply.block = release
    run_id = new_drill(engine, plan(step("shift", undo="undo-shift", attempts=1, timeout=0.2)))
    late = threading.Timer(0.6, release.set)  # the hung call lands after the step gave up
    late.start()
    try:
        progress = make_engine(engine, {"fake.apply": apply}).execute(run_id)
    finally:
        release.set()
        late.join()

    assert progress.status == "failed"
    # It may have acted, so it is undone, and only once its call has returned.
    assert list(effects.applied) == ["shift", "undo-shift"]
    with session_scope(engine) as session:
        steps = [(s.phase, s.name, s.state) for s in run_status(session, run_id=run_id).steps]
    assert steps == [("forward", "shift", "failed"), ("compensation", "undo-shift", "succeeded")]


def test_a_server_asking_for_an_hour_parks_the_run_five_minutes_and_an_abort_wakes_it(
    engine: Engine, apply: FakeAction, effects: Effects
) -> None:
    slow_down = RateLimited(
        "HTTP 429", integration="kserve", operation="patch", target="x", retry_after=3600
    )
    apply.failures = [slow_down]
    run_id = new_drill(engine, plan(step("alias", undo="undo-alias"), step("shift")))
    clock = Clock()
    runner = make_engine(engine, {"fake.apply": apply}, clock=clock, max_inline_wait=1)

    parked = runner.execute(run_id)

    assert parked.resume_at is not None
    assert (parked.resume_at - clock.now).total_seconds() == MAX_RETRY_AFTER_SECONDS
    with session_scope(engine) as session:
        request_abort(session, run_id=run_id, actor="UBOB")
    [aborted] = runner.resume_unfinished()  # at once, not when the park ends
    assert aborted.status == "aborted" and effects.count("alias") == 0
