"""`/rollbot rollback …` and `/rollbot runbook …`: propose, show plans, abort, report runs."""

from __future__ import annotations

from sqlmodel import Session, col, select

from bot.approvals.policy import PolicySnapshot
from bot.errors import NotFoundError
from bot.proposals import propose_with
from bot.runs import service as runs
from bot.runs.contracts import Plan
from bot.slack.blocks import bullet_list
from bot.slack.channels import is_channel
from bot.slack.commands import Command
from bot.slack.incident_commands import SOURCE, incident_for
from bot.slack.surface import Caller, Reply, Surface
from bot.store import session_scope
from bot.store.models import ApprovalRequest, ApprovalStatus, Incident, RunbookRun, RunStatus
from bot.store.types import utcnow


def rollback(surface: Surface, command: Command, caller: Caller) -> Reply:
    """Propose a rollback: open or join the incident and post the approval card."""
    model = command.model or ""
    started = utcnow()
    with session_scope(surface.engine) as session:
        request = propose_with(
            session,
            tools=surface.tools,
            model=model,
            to_version=command.version,
            runbook=command.runbook,
            requested_by=caller.user,
            via=SOURCE,
            reason=command.text,
        )
        # Read after the proposal took the model's lock: the ones it superseded.
        superseded = session.exec(
            select(ApprovalRequest.id)
            .where(ApprovalRequest.model == model)
            .where(ApprovalRequest.status == ApprovalStatus.CANCELLED)
            .where(col(ApprovalRequest.decided_at) >= started)
        ).all()
    assert request.id is not None and request.incident_id is not None
    _announce(surface, request=request, superseded=list(superseded))
    with session_scope(surface.engine) as session:
        channel = session.get(Incident, request.incident_id)
        where = f" in <#{channel.channel_id}>" if channel and is_channel(channel.channel_id) else ""
    needed = PolicySnapshot.from_dict(request.policy).approvals
    return Reply(
        f"Proposed rollback #{request.id} of `{model}` {request.from_version or '?'} → "
        f"{request.to_version}{where}; it needs {needed} approval(s)."
    )


def _announce(surface: Surface, *, request: ApprovalRequest, superseded: list[int | None]) -> None:
    assert request.id is not None and request.incident_id is not None
    surface.notifier.incident_opened(incident_id=request.incident_id)
    surface.notifier.incident_updated(incident_id=request.incident_id)
    for old in superseded:
        if old is not None:
            surface.notifier.proposal_decided(request_id=old)
    surface.notifier.proposal_created(request_id=request.id)


def list_runbooks(surface: Surface, command: Command, caller: Caller) -> Reply:
    """The loaded runbooks."""
    lines = [
        f"`{name}` {getattr(runbook, 'description', '')}".rstrip()
        for name, runbook in sorted(surface.tools.runbooks.items())
    ]
    return Reply(bullet_list(lines, empty="No runbooks are loaded."))


def show(surface: Surface, command: Command, caller: Caller) -> Reply:
    """The plan a rollback of the model would run now (nothing is proposed)."""
    with session_scope(surface.engine) as session:
        plan = surface.tools.plan(
            session, model=command.model or "", to_version=None, runbook=command.runbook
        )
    return Reply(plan_text(plan))


def plan_text(plan: Plan) -> str:
    """A plan as people read it."""
    steps = [f"{n}. {step.name} (`{step.action}`)" for n, step in enumerate(plan.steps, 1)]
    return (
        f"*Plan for `{plan.model}`* {plan.from_version or '?'} → {plan.to_version} "
        f"with runbook `{plan.runbook}`\n" + "\n".join(steps)
    )


def abort(surface: Surface, command: Command, caller: Caller) -> Reply:
    """Ask the run (by id, or the channel incident's active run) to stop and undo."""
    with session_scope(surface.engine) as session:
        run_id = (
            command.number
            if command.number is not None
            else _active_run_here(session, caller=caller)
        )
        runs.request_abort(session, run_id=run_id, actor=caller.user)
    surface.notifier.run_progress(run_id=run_id, message=f"Abort requested by <@{caller.user}>")
    return Reply(f"Run #{run_id} will stop after its current step and undo what it did.")


def status(surface: Surface, command: Command, caller: Caller) -> Reply:
    """A run's steps and their states."""
    with session_scope(surface.engine) as session:
        run_id = (
            command.number
            if command.number is not None
            else _latest_run_here(session, caller=caller)
        )
        view = runs.run_status(session, run_id=run_id)
    lines = [
        f"{step.phase} {step.position + 1}. {step.name}: {step.state}"
        + (f" (attempt {step.attempt})" if step.attempt > 1 else "")
        + (f" — {step.error}" if step.error else "")
        for step in view.steps
    ]
    head = (
        f"*Run #{view.run_id}* `{view.model}` {view.from_version or '?'} → {view.to_version} "
        f"({view.runbook}): *{view.status}*"
    )
    return Reply(head + "\n" + bullet_list(lines, empty="No steps."))


def _latest_run_here(session: Session, *, caller: Caller) -> int:
    incident = incident_for(session, number=None, caller=caller)
    run = session.exec(
        select(RunbookRun)
        .where(RunbookRun.incident_id == incident.id)
        .order_by(col(RunbookRun.id).desc())
    ).first()
    if run is None or run.id is None:
        raise NotFoundError(f"incident #{incident.id} has no runbook run yet")
    return run.id


def _active_run_here(session: Session, *, caller: Caller) -> int:
    run_id = _latest_run_here(session, caller=caller)
    run = runs.get_run(session, run_id=run_id)
    if run.status not in RunStatus.active():
        raise NotFoundError(f"run #{run_id} has already finished ({run.status})")
    return run_id
