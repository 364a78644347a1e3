"""Plan a rollback: what serves now, which version to go back to, and the rendered runbook."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlmodel import Session

from bot.config.models import RollbotConfig
from bot.errors import ConflictError, NotFoundError
from bot.runbooks.format import Runbook
from bot.runbooks.render import ComponentVersions, render_plan
from bot.runs.contracts import Component, Plan
from bot.safe_versions import (
    NoSafeVersion,
    assess_versions,
    no_safe_version,
    version_by_source,
    version_served_with,
)
from bot.store.types import utcnow
from integrations.deployers.base import DeploymentState
from integrations.errors import NotFound

COMPONENT_TAG_PREFIX = "component."


def serving_version(component: Component, state: DeploymentState) -> str | None:
    """The version a rollback moves away from: a canary in flight, else the stable one; when
    the deployer cannot name it, the registered version with the artifact it serves (None
    when there is none: guessing would mark the wrong version as degraded)."""
    if state.newest_version is not None or state.source is None:
        return state.newest_version
    return version_by_source(component.registry, component.registry_model, state.source)


def plan_rollback(
    *,
    config: RollbotConfig,
    runbooks: Mapping[str, Runbook],
    session: Session,
    components_for: Callable[[str], Mapping[str, Component]],
    model: str,
    to_version: str | None = None,
    runbook: str | None = None,
    parameters: Mapping[str, Any] | None = None,
) -> Plan:
    """The plan to roll ``model`` back to ``to_version`` (or its newest safe version)."""
    model_config = config.models.get(model)
    if model_config is None:
        known = ", ".join(sorted(config.models)) or "none configured"
        raise NotFoundError(f"unknown model {model!r} (known: {known})")
    runbook_name = runbook or model_config.runbook
    chosen = runbooks.get(runbook_name)
    if chosen is None:
        known = ", ".join(sorted(runbooks)) or "none"
        raise NotFoundError(f"unknown runbook {runbook_name!r} (known: {known})")
    components = components_for(model)
    main = components[model]
    state = main.deployer.current_state(main.target)
    from_version = serving_version(main, state)
    if from_version is None:
        serving = (
            f" (it serves {state.source}, which no registered version has)" if state.source else ""
        )
        raise NotFoundError(
            f"cannot tell which version of {model} serves now{serving}: without it nothing "
            "could be restored if the rollback fails; register the artifact or roll back by hand"
        )
    if to_version is None:
        to_version = _newest_safe(session, config, main, model, from_version)
    else:
        _require_version(main, to_version)
        if to_version == from_version:
            raise ConflictError(f"{model} already serves version {to_version}")
    # The model's parameter values belong to its own runbook, whether named or implied: an
    # approval re-renders the plan with the runbook named, and must get the same plan.
    own_runbook = runbook in (None, model_config.runbook)
    model_parameters = model_config.runbook_parameters if own_runbook else {}
    return render_plan(
        chosen,
        model=model,
        model_config=model_config,
        from_version=from_version,
        to_version=to_version,
        parameters={**model_parameters, **(parameters or {})},
        component_versions=_component_versions(session, components, main, model, to_version),
    )


def _newest_safe(
    session: Session, config: RollbotConfig, main: Component, model: str, current: str | None
) -> str:
    safe, rejected = assess_versions(
        session=session,
        registry=main.registry,
        model=model,
        registry_model=main.registry_model,
        policy=config.models[model].safe_version,
        current_version=current,
        now=utcnow(),
    )
    if not safe:
        raise no_safe_version(model, rejected)
    return safe[0].version


def _require_version(main: Component, version: str) -> None:
    try:
        main.registry.get_version(main.registry_model, version)
    except NotFound:
        raise NotFoundError(
            f"version {version!r} of {main.registry_model!r} does not exist in the "
            f"{main.registry.kind} registry"
        ) from None


def _component_versions(
    session: Session,
    components: Mapping[str, Component],
    main: Component,
    model: str,
    to_version: str,
) -> dict[str, ComponentVersions]:
    """For each linked component: what serves now, and the version that served with
    ``to_version`` (a ``component.<name>`` tag on the model version, else Rollbot's history)."""
    linked = {name: c for name, c in components.items() if name != model}
    if not linked:
        return {}
    tags = main.registry.get_version(main.registry_model, to_version).tags
    versions = {}
    for name, component in linked.items():
        target = tags.get(COMPONENT_TAG_PREFIX + name) or version_served_with(
            session, model=model, component=name, model_version=to_version
        )
        if target is None:
            raise NoSafeVersion(
                f"cannot tell which version of component {name!r} served with {model} version "
                f"{to_version}: tag the model version with {COMPONENT_TAG_PREFIX}{name}=<version> "
                "or record the component's deployments"
            )
        current = serving_version(component, component.deployer.current_state(component.target))
        versions[name] = ComponentVersions(from_version=current, to_version=target)
    return versions
