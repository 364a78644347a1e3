"""Runbook run operations: create a run, ask it to abort, read its status.

The engine (:mod:`bot.runs.engine`) executes runs; these functions are what the Slack
surface, the approval flow and the CLI call. Each writes its timeline event in the caller's
transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from bot.approvals import service as approvals
from bot.errors import ConflictError, NotFoundError, PolicyViolation
from bot.runs.contracts import Plan
from bot.store.models import (
    RunbookRun,
    RunStatus,
    StepRun,
    StepState,
)
from bot.timeline import record_event

SOURCE = "runbook"
FORWARD = "forward"
COMPENSATION = "compensation"


def steps_of(session: Session, run_id: int, phase: str) -> list[StepRun]:
    """The run's steps of one phase in position order."""
    return list(
        session.exec(
            select(StepRun)
            .where(StepRun.run_id == run_id, StepRun.phase == phase)
            .order_by(col(StepRun.position))
        ).all()
    )


def get_run(session: Session, *, run_id: int) -> RunbookRun:
    """The run, or NotFoundError."""
    run = session.get(RunbookRun, run_id)
    if run is None:
        raise NotFoundError(f"runbook run #{run_id} does not exist")
    return run


def active_run_for_model(session: Session, *, model: str) -> RunbookRun | None:
    """The model's pending, running or compensating run, if any."""
    return session.exec(
        select(RunbookRun)
        .where(RunbookRun.model == model)
        .where(col(RunbookRun.status).in_(RunStatus.active()))
    ).first()


def approval_problem(session: Session, *, run: RunbookRun) -> str | None:
    """Why the run's approval no longer covers it, or None when it still does (or is a drill)."""
    if run.approval_request_id is None:
        return None if run.drill else "the run has no approval request"
    return approvals.approval_gap(
        session, request_id=run.approval_request_id, plan_hash=run.plan_hash
    )


def create_run(
    session: Session,
    *,
    plan: Plan,
    incident_id: int | None,
    approval_request_id: int | None,
    requested_by: str,
    drill: bool = False,
) -> RunbookRun:
    """Store the plan and one pending step per plan step; the engine picks the run up.

    A model has at most one active run (the database enforces it); a second one is a
    ConflictError naming the run in the way. Runs other than drills need an approved request
    for exactly this plan.
    """
    run = RunbookRun(
        incident_id=incident_id,
        approval_request_id=approval_request_id,
        model=plan.model,
        runbook=plan.runbook,
        plan=plan.model_dump(mode="json"),
        plan_hash=plan.hash(),
        from_version=plan.from_version,
        to_version=plan.to_version,
        drill=drill,
    )
    if problem := approval_problem(session, run=run):
        raise PolicyViolation(f"approval no longer valid: {problem}")
    _refuse_second_active_run(session, model=plan.model)
    try:
        with session.begin_nested():
            session.add(run)
    except IntegrityError:
        # Lost a race with another creator between the check above and the insert.
        _refuse_second_active_run(session, model=plan.model)
        raise ConflictError(f"approval request #{approval_request_id} already has a run") from None
    assert run.id is not None
    for position, step in enumerate(plan.steps):
        session.add(
            StepRun(
                run_id=run.id,
                phase=FORWARD,
                position=position,
                name=step.name,
                action=step.action,
                params=step.params,
            )
        )
    kind = "drill" if drill else "rollback"
    record_event(
        session,
        incident_id=incident_id,
        kind="run.created",
        source=SOURCE,
        actor=requested_by,
        summary=(
            f"Run #{run.id} created: {kind} of {plan.model} "
            f"{plan.from_version or '?'} → {plan.to_version} with runbook {plan.runbook} "
            f"({len(plan.steps)} steps)"
        ),
        details={"run_id": run.id, "plan_hash": run.plan_hash, "drill": drill},
    )
    session.flush()
    return run


def _refuse_second_active_run(session: Session, *, model: str) -> None:
    active = active_run_for_model(session, model=model)
    if active is not None:
        raise ConflictError(
            f"{model} already has an active rollback: run #{active.id} ({active.status})"
        )


def request_abort(session: Session, *, run_id: int, actor: str) -> RunbookRun:
    """Ask a run to stop after its current step and undo what it did; repeating is harmless."""
    run = session.get(RunbookRun, run_id, with_for_update=True, populate_existing=True)
    if run is None:
        raise NotFoundError(f"runbook run #{run_id} does not exist")
    if run.status not in RunStatus.active():
        raise ConflictError(f"run #{run_id} has already finished ({run.status})")
    if run.status == RunStatus.COMPENSATING:
        raise ConflictError(f"run #{run_id} is already undoing its steps (compensating)")
    if run.abort_requested:
        return run
    run.abort_requested = True
    run.abort_requested_by = actor
    if run.claimed_by is None:
        # Parked until a retry (a long Retry-After, say): due now, so the abort is acted on.
        run.lease_expires_at = None
    session.add(run)
    record_event(
        session,
        incident_id=run.incident_id,
        kind="run.abort_requested",
        source=SOURCE,
        actor=actor,
        summary=f"Abort of run #{run_id} requested by {actor}; it stops after the current step",
        details={"run_id": run_id},
    )
    return run


@dataclass(frozen=True)
class StepView:
    """One step as a person reads it."""

    phase: str
    position: int
    name: str
    action: str
    state: str
    attempt: int
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None
    output: dict[str, Any]

    @property
    def duration_seconds(self) -> float | None:
        """How long the step took, once it finished."""
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


@dataclass(frozen=True)
class RunStatusView:
    """A run and its steps (forward steps first, then compensations in the order run)."""

    run_id: int
    model: str
    runbook: str
    from_version: str | None
    to_version: str
    status: str
    drill: bool
    error: str | None
    abort_requested: bool
    incident_id: int | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    steps: list[StepView]

    @property
    def active(self) -> bool:
        """Whether the run still holds its model."""
        return self.status in RunStatus.active()


def run_status(session: Session, *, run_id: int) -> RunStatusView:
    """The run and every step's state, attempt, duration and error."""
    run = get_run(session, run_id=run_id)
    assert run.id is not None
    rows = session.exec(select(StepRun).where(StepRun.run_id == run_id)).all()
    ordered = sorted(rows, key=lambda s: (s.phase != FORWARD, _display_position(s)))
    return RunStatusView(
        run_id=run.id,
        model=run.model,
        runbook=run.runbook,
        from_version=run.from_version,
        to_version=run.to_version,
        status=run.status,
        drill=run.drill,
        error=run.error,
        abort_requested=run.abort_requested,
        incident_id=run.incident_id,
        created_at=run.created_at,
        started_at=run.started_at,
        finished_at=run.finished_at,
        steps=[_step_view(step) for step in ordered],
    )


def _display_position(step: StepRun) -> int:
    # Compensations run newest first.
    return step.position if step.phase == FORWARD else -step.position


def _step_view(step: StepRun) -> StepView:
    return StepView(
        phase=step.phase,
        position=step.position,
        name=step.name,
        action=step.action,
        state=step.state,
        attempt=step.attempt,
        started_at=step.started_at,
        finished_at=step.finished_at,
        error=step.error,
        output=dict(step.output),
    )


def unfinished(step: StepRun) -> bool:
    """Whether the engine still has to run (or reconcile) the step."""
    return step.state in (StepState.PENDING, StepState.RUNNING)
