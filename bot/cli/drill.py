"""``rollbot drill``: rehearse a rollback end to end against local or staging integrations."""

from __future__ import annotations

import getpass
import time
from typing import Annotated

import typer
from sqlmodel import Session

from bot.cli.context import Runtime, ensure_schema, load_runtime
from bot.cli.plan import preview_plan
from bot.errors import RollbotError
from bot.runs import leases
from bot.runs.contracts import Plan
from bot.runs.engine import RunProgress
from bot.runs.live import DEFAULT_LEASE, live_engine
from bot.runs.service import RunStatusView, StepView, create_run, run_status
from bot.store import session_scope
from bot.store.types import utcnow
from bot.wiring import components_for
from bot.worker.main import worker_identity


def drill(
    runbook: Annotated[str, typer.Argument(help="The runbook to rehearse.")],
    model: Annotated[str, typer.Option("--model", help="The model to roll back.")],
    to: Annotated[
        str | None, typer.Option("--to", help="Version to roll back to (default: newest safe).")
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", help="Runbook parameter as KEY=VALUE (repeatable)."),
    ] = None,
) -> None:
    """Run RUNBOOK for MODEL now, without approval, and check the model was restored.

    Meant for the local or staging integrations the configuration names: the steps act for
    real. Exits 1 when the model does not serve the target version at 100% afterwards.
    """
    runtime = load_runtime()
    ensure_schema(runtime)
    plan = preview_plan(runtime, runbook=runbook, model=model, to=to, parameters=_parameters(param))
    worker_id = f"drill:{worker_identity()}"
    with session_scope(runtime.engine) as session:
        run = create_run(
            session,
            plan=plan,
            incident_id=None,
            approval_request_id=None,
            requested_by=f"cli:{getpass.getuser()}",
            drill=True,
        )
        assert run.id is not None
        # Claimed before it is committed, so a worker's resume job never races us for it.
        leases.claim(session, run_id=run.id, worker_id=worker_id, now=utcnow(), lease=DEFAULT_LEASE)
    engine = live_engine(runtime.engine, runtime.config, runtime.settings, worker_id=worker_id)
    progress = engine.execute(run.id)
    while not progress.finished and progress.resume_at is not None:
        time.sleep(max((progress.resume_at - utcnow()).total_seconds(), 0))
        progress = engine.execute(run.id)
    with Session(runtime.engine) as session:
        view = run_status(session, run_id=run.id)
    typer.echo(describe_drill(view))
    _check_restored(runtime, plan, view, progress)


def _parameters(pairs: list[str] | None) -> dict[str, str]:
    parameters: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="--param")
        parameters[key.strip()] = value
    return parameters


def describe_drill(view: RunStatusView) -> str:
    """The run and each step's outcome, as people read it."""
    lines = [
        f"drill run #{view.run_id}: {view.model} {view.from_version or 'nothing'} → "
        f"{view.to_version} with runbook {view.runbook}"
    ]
    lines.extend(_step_line(step) for step in view.steps)
    lines.append(f"run {view.status}" + (f": {view.error}" if view.error else ""))
    return "\n".join(lines)


def _step_line(step: StepView) -> str:
    number = f"{step.position + 1}." if step.phase == "forward" else "undo"
    took = f" in {step.duration_seconds:.1f}s" if step.duration_seconds is not None else ""
    tries = f", {step.attempt} attempts" if step.attempt > 1 else ""
    error = f": {step.error}" if step.error and step.state == "failed" else ""
    return f"  {number} {step.name} ({step.action}): {step.state}{took}{tries}{error}"


def _check_restored(
    runtime: Runtime, plan: Plan, view: RunStatusView, progress: RunProgress
) -> None:
    """Read the live deployment: the drill passed only if the target version serves 100% and
    the run succeeded (a failed check after the shift is a failed drill, rollback kept)."""
    if not progress.finished:
        raise RollbotError(
            f"drill run #{view.run_id} is still {view.status}: another worker holds it"
        )
    main = components_for(runtime.config, runtime.settings, plan.model)[plan.model]
    state = main.deployer.current_state(main.target)
    percent = state.serving_percent(plan.to_version)
    if percent != 100:
        raise RollbotError(
            f"drill failed: {plan.model} was not restored to version {plan.to_version} "
            f"(it gets {percent}% of traffic on {state.target}; run {view.status})"
        )
    typer.echo(f"restored: {plan.model} serves version {plan.to_version} at 100% ({state.target})")
    if view.status != "succeeded":
        raise RollbotError(f"drill failed: the run {view.status}: {view.error}")
