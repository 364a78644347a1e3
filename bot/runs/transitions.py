"""Every state change of a run and its steps, each with its timeline event.

The engine calls these inside one transaction per change, so the database never holds a
state without the event that explains it, and a crash between two changes leaves the run at
the last one. What steps mean for the run's incident: :mod:`bot.runs.incident_effects`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session, select

from bot.runs import incident_effects
from bot.runs.contracts import Plan, PlanStep
from bot.runs.events import label, run_event, step_details
from bot.runs.leases import release
from bot.runs.service import COMPENSATION, FORWARD, steps_of, unfinished
from bot.store.models import RunbookRun, RunStatus, StepRun, StepState


def spec_for(plan: Plan, step: StepRun) -> PlanStep:
    """The plan step a stored step executes (a forward step or its compensation)."""
    forward = plan.steps[step.position]
    if step.phase == FORWARD:
        return forward
    assert forward.compensation is not None
    return forward.compensation


def start_run(session: Session, run: RunbookRun, *, at: datetime) -> None:
    """The first step is about to run."""
    run.status, run.started_at = RunStatus.RUNNING, at
    session.add(run)
    run_event(
        session,
        run,
        "run.started",
        f"Run #{run.id} started: {run.model} {run.from_version or '?'} → {run.to_version}",
        at=at,
    )


def step_started(
    session: Session, run: RunbookRun, step: StepRun, *, key: str, total: int, at: datetime
) -> None:
    """Committed before the action is called, so a crash mid-step is found on resume."""
    step.state, step.attempt, step.idempotency_key = StepState.RUNNING, step.attempt + 1, key
    step.started_at = step.started_at or at
    step.next_attempt_at = None
    session.add(step)
    run_event(
        session,
        run,
        "step.started",
        f"{label(step, total)} started (attempt {step.attempt})",
        at=at,
        attempt=step.attempt,
        idempotency_key=key,
        **step_details(step),
    )


def step_succeeded(
    session: Session,
    run: RunbookRun,
    plan: Plan,
    step: StepRun,
    *,
    output: dict[str, Any],
    reconciled: bool,
    at: datetime,
) -> None:
    """The action's effect is in place (done now, or found done after a crash)."""
    step.state, step.output, step.error, step.finished_at = StepState.SUCCEEDED, output, None, at
    session.add(step)
    how = " (found already in place after a restart)" if reconciled else ""
    run_event(
        session,
        run,
        "step.succeeded",
        f"{label(step, len(plan.steps))} succeeded{how}",
        at=at,
        attempt=step.attempt,
        reconciled=reconciled,
        output=output,
        **step_details(step),
    )
    if step.phase == FORWARD:
        incident_effects.note_done(session, run, plan, step, at=at)
    else:
        incident_effects.note_undone(session, run, plan, step, at=at)


def step_note(session: Session, run: RunbookRun, step: StepRun, *, note: str, at: datetime) -> None:
    """A note a step left for the people following the run (the ``notify`` action)."""
    run_event(session, run, "run.note", note, at=at, **step_details(step))


def step_retrying(
    session: Session,
    run: RunbookRun,
    step: StepRun,
    *,
    error: str,
    retry_at: datetime,
    outcome_unknown: bool,
    total: int,
    at: datetime,
) -> None:
    """A retryable failure: wait until ``retry_at``.

    After a definite failure the next attempt gets a fresh idempotency key; when the outcome
    is unknown (a timeout) the key is kept, so a late success and the retry count once.
    """
    step.state, step.error, step.next_attempt_at = StepState.PENDING, error, retry_at
    if not outcome_unknown:
        step.idempotency_key = None
    session.add(step)
    wait = (retry_at - at).total_seconds()
    run_event(
        session,
        run,
        "step.retrying",
        f"{label(step, total)} failed (attempt {step.attempt}), retrying in {wait:.1f}s: {error}",
        at=at,
        attempt=step.attempt,
        error=error,
        retry_at=retry_at.isoformat(),
        **step_details(step),
    )


def step_failed(
    session: Session, run: RunbookRun, step: StepRun, *, error: str, total: int, at: datetime
) -> None:
    """The step gave up; what happens to the run is the caller's next change."""
    step.state, step.error, step.finished_at = StepState.FAILED, error, at
    session.add(step)
    run_event(
        session,
        run,
        "step.failed",
        f"{label(step, total)} failed after {step.attempt} attempt(s): {error}",
        at=at,
        attempt=step.attempt,
        error=error,
        **step_details(step),
    )


def begin_compensation(
    session: Session,
    run: RunbookRun,
    plan: Plan,
    *,
    reason: str | None,
    own_failed_step: StepRun | None,
    at: datetime,
) -> None:
    """Stop going forward and queue the undo of every succeeded step that has one.

    ``reason`` is None for an abort and the failure otherwise; ``own_failed_step`` is the
    failed step whose own compensation runs too (on_failure: compensate).
    """
    forward = steps_of(session, run.id or 0, FORWARD)
    to_undo = [
        s
        for s in forward
        if s.state == StepState.SUCCEEDED or s is own_failed_step or may_have_acted(s)
    ]
    queued = [s for s in to_undo if plan.steps[s.position].compensation is not None]
    for step in forward:
        if may_have_acted(step):
            step.state, step.finished_at = StepState.SKIPPED, at
            step.error = "stopped with its outcome unknown; undone in case it acted"
            session.add(step)
        elif step.state == StepState.PENDING:
            step.state = StepState.SKIPPED
            session.add(step)
    for step in queued:
        undo = plan.steps[step.position].compensation
        assert undo is not None
        session.add(
            StepRun(
                run_id=step.run_id,
                phase=COMPENSATION,
                position=step.position,
                name=undo.name,
                action=undo.action,
                params=undo.params,
            )
        )
    run.status, run.error = RunStatus.COMPENSATING, reason
    session.add(run)
    why = reason or f"abort requested by {run.abort_requested_by}"
    names = ", ".join(repr(plan.steps[s.position].name) for s in reversed(queued)) or "nothing"
    run_event(
        session,
        run,
        "run.compensating",
        f"Run #{run.id} is undoing its steps ({names}): {why}",
        at=at,
        reason=why,
        compensations=[s.position for s in reversed(queued)],
    )


def may_have_acted(step: StepRun) -> bool:
    """A step caught mid-call by a crash, or waiting to retry a call that timed out (its
    idempotency key is kept only then): its effect may be in place."""
    return step.state == StepState.RUNNING or (
        step.state == StepState.PENDING and step.idempotency_key is not None
    )


def finish_succeeded(session: Session, run: RunbookRun, *, at: datetime) -> None:
    """Every forward step is done (some may have failed with on_failure: continue)."""
    failed = [s.name for s in steps_of(session, run.id or 0, FORWARD) if s.state == "failed"]
    run.status, run.finished_at = RunStatus.SUCCEEDED, at
    release(run)
    session.add(run)
    note = f" ({len(failed)} step(s) failed and were passed over: {', '.join(failed)})"
    run_event(
        session,
        run,
        "run.succeeded",
        f"Run #{run.id} succeeded: {run.model} now on {run.to_version}" + (note if failed else ""),
        at=at,
        failed_steps=failed,
    )


def finish_after_compensation(session: Session, run: RunbookRun, *, at: datetime) -> None:
    """Compensations are done: the run ends failed (a step failed) or aborted (on request)."""
    undo = steps_of(session, run.id or 0, COMPENSATION)
    broken = [f"{s.name!r}: {s.error}" for s in undo if s.state == StepState.FAILED]
    aborted = run.error is None and run.abort_requested
    reasons = [run.error or f"aborted by {run.abort_requested_by}"]
    if broken:
        reasons.append("compensation failed: " + "; ".join(broken))
    run.error = "; ".join(reasons)
    run.status = RunStatus.ABORTED if aborted else RunStatus.FAILED
    run.finished_at = at
    release(run)
    session.add(run)
    run_event(
        session,
        run,
        f"run.{run.status}",
        f"Run #{run.id} {run.status}: {run.error}",
        at=at,
        error=run.error,
        compensated=[s.name for s in undo if s.state == StepState.SUCCEEDED],
    )


def escalate_unverified(
    session: Session, run: RunbookRun, step: StepRun, *, error: str, stop: bool, at: datetime
) -> None:
    """The safe version serves but the check after it failed: keep it, and call for people.

    Undoing the rollback would put the degraded version back (or, with the metrics down,
    do so on no evidence at all); the incident is raised to at least sev2 instead.
    """
    message = incident_effects.escalate(session, run, step, error=error, at=at)
    if stop:
        fail_without_acting(
            session,
            run,
            message=f"{message}; the rollback is kept, not undone",
            at=at,
            keep_lease=True,
        )


def fail_unapproved(session: Session, run: RunbookRun, *, problem: str, at: datetime) -> None:
    """The approval no longer covers the run: end it without touching anything."""
    fail_without_acting(session, run, message=f"approval no longer valid: {problem}", at=at)


def fail_without_acting(
    session: Session, run: RunbookRun, *, message: str, at: datetime, keep_lease: bool = False
) -> None:
    """End the run failed, acting on nothing more (not even compensation), saying why.

    ``keep_lease`` leaves the lease to the engine, which still holds the run this round.
    """
    for step in session.exec(select(StepRun).where(StepRun.run_id == run.id)).all():
        if unfinished(step):
            was_running = step.state == StepState.RUNNING
            step.state = StepState.FAILED if was_running else StepState.SKIPPED
            step.error = f"interrupted; {message}" if was_running else None
            session.add(step)
    run.status, run.error, run.finished_at = RunStatus.FAILED, message, at
    if not keep_lease:
        release(run)
    session.add(run)
    run_event(session, run, "run.failed", f"Run #{run.id} failed: {message}", at=at, error=message)
