"""``rollbot plan``: show what a rollback would do, without doing any of it."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlmodel import Session

from bot.cli.context import Runtime, ensure_schema, load_runtime
from bot.config import format_duration
from bot.runbooks import load_runbooks, locate_runbooks_dir, plan_rollback
from bot.runs.contracts import Plan, PlanStep
from bot.safe_versions import import_history
from bot.wiring import components_for, seed_history


def plan(
    model: Annotated[str, typer.Argument(help="The model to roll back.")],
    to: Annotated[
        str | None, typer.Option("--to", help="Version to roll back to (default: newest safe).")
    ] = None,
    runbook: Annotated[
        str | None, typer.Option(help="Runbook to use (default: the model's own).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
) -> None:
    """Show the rollback plan for MODEL: from → to, every step, the plan hash. Changes nothing."""
    runtime = load_runtime()
    ensure_schema(runtime)
    result = preview_plan(runtime, model=model, to=to, runbook=runbook)
    if as_json:
        typer.echo(json.dumps({**result.model_dump(mode="json"), "plan_hash": result.hash()}))
    else:
        typer.echo(describe_plan(result))


def preview_plan(
    runtime: Runtime,
    *,
    model: str,
    to: str | None,
    runbook: str | None,
    parameters: dict[str, Any] | None = None,
) -> Plan:
    """Render the model's rollback plan without keeping anything in the database.

    A demo registry's seeded history informs the choice of version, then is rolled back.
    """
    config_path = Path(runtime.settings.rollbot_config)
    runbooks = load_runbooks(locate_runbooks_dir(runtime.config.runbooks_dir, config_path))
    with Session(runtime.engine) as session:
        seed = seed_history(runtime.config, runtime.settings, model)
        import_history(session, model=model, entries=seed)
        plan = plan_rollback(
            config=runtime.config,
            runbooks=runbooks,
            session=session,
            components_for=lambda name: components_for(runtime.config, runtime.settings, name),
            model=model,
            to_version=to,
            runbook=runbook,
            parameters=parameters,
        )
        session.rollback()
    return plan


def describe_plan(plan: Plan) -> str:
    """The plan as people read it."""
    lines = [f"{plan.model}: {plan.from_version or 'nothing'} → {plan.to_version}"]
    lines.append(f"runbook: {plan.runbook}")
    if plan.parameters:
        values = ", ".join(f"{k}={_value(v)}" for k, v in sorted(plan.parameters.items()))
        lines.append(f"parameters: {values}")
    lines.append("steps:")
    for number, step in enumerate(plan.steps, start=1):
        lines.extend(_step_lines(f"{number}.", step))
    lines.append(f"plan hash: {plan.hash()}")
    return "\n".join(lines)


def _step_lines(prefix: str, step: PlanStep, indent: str = "  ") -> list[str]:
    retry = step.retry.max_attempts
    lines = [
        f"{indent}{prefix} {step.name}: {step.action}  "
        f"(timeout {format_duration(timedelta(seconds=step.timeout_seconds))}, "
        f"{retry} attempt{'s' if retry > 1 else ''}, "
        f"on failure {step.on_failure.value})"
    ]
    lines.extend(f"{indent}     {key}: {_value(value)}" for key, value in step.params.items())
    if step.compensation is not None:
        lines.extend(_step_lines("undo:", step.compensation, indent + "     "))
    return lines


def _value(value: Any) -> str:
    if isinstance(value, str):
        return " ".join(value.split())
    return json.dumps(value)
