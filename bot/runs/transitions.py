"""Every state change of a run and its steps, each with its timeline event.

The engine calls these inside one transaction per change, so the database never holds a
state without the event that explains it, and a crash between two changes leaves the run at
the last one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from bot.incidents import service as incidents
from bot.runs.contracts import Plan, PlanStep
from bot.runs.leases import release
from bot.runs.service import COMPENSATION, FORWARD, SOURCE, unfinished
from bot.safe_versions import MODEL_COMPONENT, record_deployment
from bot.store.models import Incident, IncidentStatus, RunbookRun, RunStatus, StepRun, StepState
from bot.timeline import record_event

ENGINE_ACTOR = "rollbot"
SHIFT_TRAFFIC = "deployer.shift_traffic"


def steps_of(session: Session, run_id: int, phase: str) -> list[StepRun]:
    """The run's steps of one phase in position order."""
    return list(
        session.exec(
            select(StepRun)
            .where(StepRun.run_id == run_id, StepRun.phase == phase)
            .order_by(col(StepRun.position))
        ).all()
    )


def spec_for(plan: Plan, step: StepRun) -> PlanStep:
    """The plan step a stored step executes (a forward step or its compensation)."""
    forward = plan.steps[step.position]
    if step.phase == FORWARD:
        return forward
    assert forward.compensation is not None
    return forward.compensation


def label(step: StepRun, total: int) -> str:
    """How a step is named on the timeline."""
    if step.phase == COMPENSATION:
        return f"Compensation {step.name!r} (for step {step.position + 1})"
    return f"Step {step.position + 1}/{total} {step.name!r}"


def _event(
    session: Session,
    run: RunbookRun,
    kind: str,
    summary: str,
    *,
    at: datetime,
    actor: str = ENGINE_ACTOR,
    **details: Any,
) -> None:
    record_event(
        session,
        incident_id=run.incident_id,
        kind=kind,
        source=SOURCE,
        actor=actor,
        summary=summary,
        details={"run_id": run.id, **details},
        occurred_at=at,
    )


def _step_details(step: StepRun) -> dict[str, Any]:
    return {"phase": step.phase, "position": step.position, "action": step.action}


def start_run(session: Session, run: RunbookRun, *, at: datetime) -> None:
    """The first step is about to run."""
    run.status, run.started_at = RunStatus.RUNNING, at
    session.add(run)
    _event(
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
    _event(
        session,
        run,
        "step.started",
        f"{label(step, total)} started (attempt {step.attempt})",
        at=at,
        attempt=step.attempt,
        idempotency_key=key,
        **_step_details(step),
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
    _event(
        session,
        run,
        "step.succeeded",
        f"{label(step, len(plan.steps))} succeeded{how}",
        at=at,
        attempt=step.attempt,
        reconciled=reconciled,
        output=output,
        **_step_details(step),
    )
    if step.phase == FORWARD:
        _note_key_times(session, run, plan, step, at=at)
    else:
        _note_mitigation_undone(session, run, plan, step, at=at)


def _note_mitigation_undone(
    session: Session, run: RunbookRun, plan: Plan, undo: StepRun, *, at: datetime
) -> None:
    """Undoing the full shift to the safe version undoes the mitigation: the incident's
    mitigation and verification times no longer hold."""
    if run.incident_id is None:
        return
    forward = steps_of(session, run.id or 0, FORWARD)
    if not any(s.position == undo.position and _mitigates(s, plan) for s in forward):
        return
    incident = _incident(session, run)
    if incident.mitigated_at is None:
        return
    incident.mitigated_at, incident.verified_at = None, None
    session.add(incident)
    _event(
        session,
        run,
        "incident.unmitigated",
        f"Mitigation undone by {undo.name!r}: traffic is no longer all on version "
        f"{plan.to_version}, so the incident's mitigation time is cleared",
        at=at,
        **_step_details(undo),
    )


def step_note(session: Session, run: RunbookRun, step: StepRun, *, note: str, at: datetime) -> None:
    """A note a step left for the people following the run (the ``notify`` action)."""
    _event(session, run, "run.note", note, at=at, **_step_details(step))


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
    _event(
        session,
        run,
        "step.retrying",
        f"{label(step, total)} failed (attempt {step.attempt}), retrying in {wait:.1f}s: {error}",
        at=at,
        attempt=step.attempt,
        error=error,
        retry_at=retry_at.isoformat(),
        **_step_details(step),
    )


def step_failed(
    session: Session, run: RunbookRun, step: StepRun, *, error: str, total: int, at: datetime
) -> None:
    """The step gave up; what happens to the run is the caller's next change."""
    step.state, step.error, step.finished_at = StepState.FAILED, error, at
    session.add(step)
    _event(
        session,
        run,
        "step.failed",
        f"{label(step, total)} failed after {step.attempt} attempt(s): {error}",
        at=at,
        attempt=step.attempt,
        error=error,
        **_step_details(step),
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
    _event(
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
    _event(
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
    _event(
        session,
        run,
        f"run.{run.status}",
        f"Run #{run.id} {run.status}: {run.error}",
        at=at,
        error=run.error,
        compensated=[s.name for s in undo if s.state == StepState.SUCCEEDED],
    )


def verifies_mitigation(session: Session, run: RunbookRun, plan: Plan, step: StepRun) -> bool:
    """Whether ``step`` checks the model after its traffic went back to the safe version."""
    if step.phase != FORWARD or not _is_verification(step):
        return False
    done = steps_of(session, run.id or 0, FORWARD)[: step.position]
    return any(s.state == StepState.SUCCEEDED and _mitigates(s, plan) for s in done)


def escalate_unverified(
    session: Session, run: RunbookRun, step: StepRun, *, error: str, stop: bool, at: datetime
) -> None:
    """The safe version serves but the check after it failed: keep it, and call for people.

    Undoing the rollback would put the degraded version back (or, with the metrics down,
    do so on no evidence at all); the incident is raised to at least sev2 instead.
    """
    message = (
        f"verification {step.name!r} failed after traffic went back to version "
        f"{run.to_version}: {error}"
    )
    if run.incident_id is not None:
        incident = _incident(session, run)
        if incident.status != IncidentStatus.RESOLVED and incident.severity in ("sev3", "sev4"):
            incidents.set_severity(
                session, incident=incident, severity="sev2", actor=ENGINE_ACTOR, source=SOURCE
            )
    _event(
        session,
        run,
        "incident.escalated",
        f"Escalated: {message}. The rollback is kept; a person needs to look now.",
        at=at,
        error=error,
        **_step_details(step),
    )
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
    _event(session, run, "run.failed", f"Run #{run.id} failed: {message}", at=at, error=message)


def _note_key_times(
    session: Session, run: RunbookRun, plan: Plan, step: StepRun, *, at: datetime
) -> None:
    """Mitigation is the full shift to the safe version; verification a check after it."""
    if _is_full_shift(step):
        component = step.params.get("component")
        is_model = component in (None, run.model)
        if run.incident_id is not None and is_model and _version(step) == plan.to_version:
            incidents.mark_time(
                session, incident=_incident(session, run), key="mitigated_at", at=at
            )
        if not run.drill:
            _record_deployment(
                session, run, component=None if is_model else component, step=step, at=at
            )
    elif _is_verification(step) and run.incident_id is not None:
        done = steps_of(session, run.id or 0, FORWARD)[: step.position]
        if any(s.state == StepState.SUCCEEDED and _mitigates(s, plan) for s in done):
            incidents.mark_time(session, incident=_incident(session, run), key="verified_at", at=at)


def _is_full_shift(step: StepRun) -> bool:
    return step.action == SHIFT_TRAFFIC and step.params.get("percent", 100) == 100


def _mitigates(step: StepRun, plan: Plan) -> bool:
    component = step.params.get("component")
    return (
        _is_full_shift(step)
        and component in (None, plan.model)
        and _version(step) == plan.to_version
    )


def _version(step: StepRun) -> str | None:
    version = step.params.get("version")
    return None if version is None else str(version)


def _is_verification(step: StepRun) -> bool:
    return step.action == "verify" or step.action.split(".")[-1].startswith("verify")


def _incident(session: Session, run: RunbookRun) -> Incident:
    assert run.incident_id is not None
    return incidents.get(session, incident_id=run.incident_id)


def _record_deployment(
    session: Session, run: RunbookRun, *, component: str | None, step: StepRun, at: datetime
) -> None:
    version = _version(step)
    if version is None:
        return
    record_deployment(
        session,
        model=run.model,
        component=component or MODEL_COMPONENT,
        version=version,
        reason="rollback",
        actor=ENGINE_ACTOR,
        run_id=run.id,
        incident_id=run.incident_id,
        at=at,
    )
