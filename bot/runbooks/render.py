"""Render a runbook into a :class:`Plan` for one model: parameters resolved, steps concrete.

Pure: no database, no integrations. The template context holds ``model``, ``from_version``,
``to_version``, ``params``, ``target``, ``watch`` and ``components`` (linked components in
dependency order, each with ``name``, ``from_version``, ``to_version``, ``target``); a step with
``for_each_component: true`` is repeated once per component with ``component`` set.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pydantic import ValidationError

from bot.config.durations import format_duration
from bot.config.models import ComponentConfig, ModelConfig
from bot.errors import ConfigError, RollbotError, validation_reason
from bot.runbooks.format import CompensationSpec, Runbook, StepSpec
from bot.runbooks.problems import FieldPath
from bot.runbooks.templating import TemplateProblem, render_value
from bot.runs.actions import ACTIONS
from bot.runs.actions.base import ActionParams
from bot.runs.contracts import OnFailure, Plan, PlanStep

# A step's timeout when its runbook gives none, beyond the least time the action takes.
DEFAULT_STEP_TIMEOUT = timedelta(minutes=5)

Report = Callable[[FieldPath, str], None]


@dataclass(frozen=True)
class ComponentVersions:
    """Which version of a linked component serves now and which one the rollback restores."""

    from_version: str | None
    to_version: str | None


def dependency_order(components: Sequence[ComponentConfig]) -> list[ComponentConfig]:
    """Components with each one after everything it depends on (stable otherwise)."""
    by_name = {component.name: component for component in components}
    ordered: list[ComponentConfig] = []
    visiting: set[str] = set()

    def visit(component: ComponentConfig, chain: tuple[str, ...]) -> None:
        if component in ordered:
            return
        if component.name in visiting:
            raise ConfigError(f"components depend on each other in a cycle: {' → '.join(chain)}")
        visiting.add(component.name)
        for name in component.depends_on:
            if name not in by_name:
                known = ", ".join(sorted(by_name)) or "none"
                raise ConfigError(
                    f"component {component.name!r} depends on unknown component {name!r} "
                    f"(known: {known})"
                )
            visit(by_name[name], (*chain, name))
        visiting.discard(component.name)
        ordered.append(component)

    for component in components:
        visit(component, (component.name,))
    return ordered


def resolve_parameters(runbook: Runbook, given: Mapping[str, Any] | None) -> dict[str, Any]:
    """Every parameter of the runbook, typed: the given value, else its default."""
    given = dict(given or {})
    unknown = sorted(set(given) - set(runbook.parameters))
    if unknown:
        known = ", ".join(sorted(runbook.parameters)) or "none"
        raise RollbotError(
            f"runbook {runbook.name!r} has no parameter {unknown[0]!r} (known: {known})"
        )
    values: dict[str, Any] = {}
    for name, spec in runbook.parameters.items():
        value = given.get(name, spec.default)
        if value is None:
            raise RollbotError(f"runbook {runbook.name!r} needs a value for parameter {name!r}")
        try:
            values[name] = spec.coerce(value)
        except ValueError as exc:
            raise RollbotError(f"runbook {runbook.name!r} parameter {name!r}: {exc}") from None
    return values


def template_context(
    *,
    model: str,
    model_config: ModelConfig,
    from_version: str | None,
    to_version: str,
    params: Mapping[str, Any],
    component_versions: Mapping[str, ComponentVersions] | None = None,
) -> dict[str, Any]:
    """The variables a runbook's templates may use."""
    versions = component_versions or {}
    components = []
    for component in dependency_order(model_config.components):
        known = versions.get(component.name, ComponentVersions(None, None))
        components.append(
            {
                "name": component.name,
                "from_version": known.from_version,
                "to_version": known.to_version,
                "target": dict(component.target),
                "depends_on": list(component.depends_on),
            }
        )
    return {
        "model": model,
        "from_version": from_version,
        "to_version": to_version,
        "params": dict(params),
        "target": dict(model_config.target),
        "watch": model_config.watch.model_dump(mode="json") if model_config.watch else {},
        "components": components,
    }


def render_steps(
    runbook: Runbook, context: Mapping[str, Any], report: Report, *, every_step: bool = False
) -> list[PlanStep]:
    """The plan's steps; problems go to ``report``. With ``every_step``, each step is rendered
    whatever its ``when`` says, though a ``when`` that does not render is still reported."""
    steps: list[PlanStep] = []
    seen: set[str] = set()
    for index, spec in enumerate(runbook.steps):
        where: FieldPath = ("steps", index)
        for step_context in _expansions(spec, context):
            try:
                wanted = _wanted(spec, step_context, where)
            except TemplateProblem as problem:
                report(problem.path, problem.reason)
                wanted = False
            if not (wanted or every_step):
                continue
            try:
                step = _plan_step(spec, step_context, where, report)
            except TemplateProblem as problem:
                report(problem.path, problem.reason)
                continue
            if step is None:
                continue
            if step.name in seen:
                report((*where, "name"), f"two steps are named {step.name!r} in the plan")
            seen.add(step.name)
            steps.append(step)
    return steps


def render_plan(
    runbook: Runbook,
    *,
    model: str,
    model_config: ModelConfig,
    from_version: str | None,
    to_version: str,
    parameters: Mapping[str, Any] | None = None,
    component_versions: Mapping[str, ComponentVersions] | None = None,
) -> Plan:
    """The exact plan for this model and these versions; RollbotError naming file and line."""
    values = resolve_parameters(runbook, parameters)
    context = template_context(
        model=model,
        model_config=model_config,
        from_version=from_version,
        to_version=to_version,
        params=values,
        component_versions=component_versions,
    )

    def fail(path: FieldPath, reason: str) -> None:
        raise RollbotError(f"{runbook.where(path)}: {reason} (model {model!r})")

    steps = render_steps(runbook, context, fail)
    if not steps:
        raise RollbotError(f"{runbook.source}: runbook {runbook.name!r} has no steps for {model!r}")
    return Plan(
        model=model,
        runbook=runbook.name,
        from_version=from_version,
        to_version=to_version,
        parameters=values,
        steps=steps,
    )


def _expansions(spec: StepSpec, context: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    if not spec.for_each_component:
        return [context]
    return [{**context, "component": component} for component in context["components"]]


def _wanted(spec: StepSpec, context: Mapping[str, Any], where: FieldPath) -> bool:
    if spec.when is None:
        return True
    return bool(render_value(spec.when, context, (*where, "when")))


def _plan_step(
    spec: CompensationSpec, context: Mapping[str, Any], where: FieldPath, report: Report
) -> PlanStep | None:
    action = ACTIONS.get(spec.action)
    if action is None:
        known = ", ".join(sorted(ACTIONS))
        raise TemplateProblem(
            (*where, "action"), f"unknown action {spec.action!r} (known: {known})"
        )
    name = str(render_value(spec.name, context, (*where, "name")))
    raw = render_value(spec.params, context, (*where, "params"))
    try:
        params = action.params_model.model_validate(raw)
    except ValidationError as exc:
        for error in exc.errors():
            message = validation_reason(error)
            if error["type"] == "extra_forbidden":
                message = f"unknown parameter of {spec.action} (check the spelling)"
            report((*where, "params", *error["loc"]), message)
        return None
    least = params.least_duration() if isinstance(params, ActionParams) else None
    timeout = spec.timeout
    if timeout is None:
        timeout = DEFAULT_STEP_TIMEOUT + (least[1] if least is not None else timedelta(0))
    elif timeout.total_seconds() <= 0:
        raise TemplateProblem((*where, "timeout"), "timeout must be positive")
    elif least is not None and least[1] >= timeout:
        name_of, span = least
        report(
            (*where, "timeout"),
            f"timeout {format_duration(timeout)} is not longer than the step's "
            f"{name_of} {format_duration(span)}: it could never finish",
        )
        return None
    compensation = None
    if isinstance(spec, StepSpec) and spec.compensation is not None:
        compensation = _plan_step(spec.compensation, context, (*where, "compensation"), report)
        if compensation is None:
            return None
    return PlanStep(
        name=name,
        action=spec.action,
        params=params.model_dump(mode="json", exclude_none=True),
        timeout_seconds=timeout.total_seconds(),
        retry=spec.retry.policy(),
        on_failure=spec.on_failure if isinstance(spec, StepSpec) else OnFailure.STOP,
        compensation=compensation,
    )
