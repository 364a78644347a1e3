"""Deployer actions: shift traffic to a version, wait for the deployment to be ready."""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, Field

from bot.config.durations import Duration, format_duration
from bot.runs.actions.base import ActionParams, component_of, typed
from bot.runs.contracts import StepContext
from integrations.deployers.base import DeploymentState
from integrations.errors import IntegrationTimeout


class ShiftTrafficParams(ActionParams):
    """Send ``percent`` of the component's traffic to ``version``."""

    version: str = Field(min_length=1)
    percent: int = Field(default=100, ge=0, le=100)
    component: str | None = None


class ShiftTraffic:
    """``deployer.shift_traffic``: the registry says where the version's artifact is."""

    name = "deployer.shift_traffic"
    params_model: type[BaseModel] = ShiftTrafficParams
    description = "Send a percentage of traffic to a version (100 makes it the only one)."

    def execute(
        self, context: StepContext, params: BaseModel, *, idempotency_key: str
    ) -> dict[str, Any]:
        p = typed(params, ShiftTrafficParams)
        component = component_of(context, p.component)
        source = component.registry.get_version(component.registry_model, p.version).source
        state = component.deployer.shift_traffic(
            component.target,
            version=p.version,
            source=source,
            percent=p.percent,
            idempotency_key=idempotency_key,
        )
        return _shift_output(component.name, p, state)

    def reconcile(self, context: StepContext, params: BaseModel) -> dict[str, Any] | None:
        p = typed(params, ShiftTrafficParams)
        component = component_of(context, p.component)
        state = component.deployer.current_state(component.target)
        if state.serving_percent(p.version) != p.percent:
            return None
        return _shift_output(component.name, p, state)


def _shift_output(component: str, p: ShiftTrafficParams, state: DeploymentState) -> dict[str, Any]:
    return {
        "component": component,
        "version": p.version,
        "percent": p.percent,
        "state": asdict(state),
    }


class WaitReadyParams(ActionParams):
    """Wait until the deployment reports ready (and serves ``version`` when given)."""

    version: str | None = None
    component: str | None = None
    timeout: Duration = timedelta(minutes=5)
    interval: Duration = timedelta(seconds=5)

    def least_duration(self) -> tuple[str, timedelta] | None:
        return "timeout", self.timeout


class WaitReady:
    """``deployer.wait_ready``: poll the live state until ready or the timeout passes."""

    name = "deployer.wait_ready"
    params_model: type[BaseModel] = WaitReadyParams
    description = "Poll the deployment until it is ready (and serving a version), or time out."

    def execute(
        self, context: StepContext, params: BaseModel, *, idempotency_key: str
    ) -> dict[str, Any]:
        p = typed(params, WaitReadyParams)
        component = component_of(context, p.component)
        deadline = context.now() + p.timeout
        polls = 0
        while True:
            state = component.deployer.current_state(component.target)
            polls += 1
            if _is_ready(state, p.version):
                return {"component": component.name, "polls": polls, "state": asdict(state)}
            remaining = (deadline - context.now()).total_seconds()
            if remaining <= 0:
                detail = f": {state.message}" if state.message else ""
                raise IntegrationTimeout(
                    f"not ready after {format_duration(p.timeout)}{detail}",
                    integration=component.deployer.kind,
                    operation="wait_ready",
                    target=state.target,
                )
            context.sleep(min(p.interval.total_seconds(), remaining))

    def reconcile(self, context: StepContext, params: BaseModel) -> dict[str, Any] | None:
        p = typed(params, WaitReadyParams)
        component = component_of(context, p.component)
        state = component.deployer.current_state(component.target)
        if not _is_ready(state, p.version):
            return None
        return {"component": component.name, "polls": 1, "state": asdict(state)}


def _is_ready(state: DeploymentState, version: str | None) -> bool:
    return state.ready and (version is None or state.serving_percent(version) > 0)
