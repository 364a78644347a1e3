"""The shapes shared by the runbook loader, the actions and the engine.

A runbook (YAML with Jinja2) renders into a :class:`Plan`: every parameter resolved, every
step concrete. Approvals bind to :func:`Plan.hash`; the engine executes exactly that plan.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from integrations.deployers.base import Deployer, DeployTarget
from integrations.metrics.base import MetricsSource
from integrations.registry.base import ModelRegistry


class OnFailure(StrEnum):
    """What a step that keeps failing does to the run."""

    STOP = "stop"  # end the run failed; compensate the steps already done
    CONTINUE = "continue"  # note the failure and go on with the next step
    COMPENSATE = "compensate"  # run this step's own compensation, then as STOP


class RetryPolicy(BaseModel):
    """Exponential backoff with full jitter, on retryable errors only."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    max_attempts: int = Field(default=3, ge=1, le=20)
    initial_backoff_seconds: float = Field(default=2.0, ge=0)
    max_backoff_seconds: float = Field(default=60.0, ge=0)


class PlanStep(BaseModel):
    """One concrete step: an action with resolved parameters."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    action: str
    params: dict[str, Any] = Field(default_factory=dict)
    timeout_seconds: float = Field(default=300, gt=0)
    retry: RetryPolicy = RetryPolicy()
    on_failure: OnFailure = OnFailure.STOP
    compensation: PlanStep | None = None


class Plan(BaseModel):
    """A fully rendered runbook for one model: what will happen, exactly."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    model: str
    runbook: str
    from_version: str | None
    to_version: str
    parameters: dict[str, Any] = Field(default_factory=dict)
    steps: list[PlanStep]

    def canonical_json(self) -> str:
        """The plan as canonical JSON (sorted keys, no whitespace)."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))

    def hash(self) -> str:
        """SHA-256 of the canonical plan: what an approval is bound to."""
        return hashlib.sha256(self.canonical_json().encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Component:
    """A model or linked component: where its versions live and where it is served."""

    name: str
    registry: ModelRegistry
    registry_model: str
    deployer: Deployer
    target: DeployTarget


@dataclass
class StepContext:
    """What an action may touch while it runs: the model's integrations and a clock."""

    model: str
    components: Mapping[str, Component]
    metrics: MetricsSource | None
    now: Callable[[], datetime]
    sleep: Callable[[float], None]
    run_id: int | None = None
    notes: list[str] = field(default_factory=list)

    def component(self, name: str | None) -> Component:
        """The named component; the model itself when ``name`` is None or the model's name."""
        return self.components[name or self.model]


class Action(Protocol):
    """A runbook action such as ``deployer.shift_traffic``.

    ``params_model`` validates a step's parameters when a runbook is checked, so a bad
    runbook fails at load time. ``reconcile`` tells the engine, after a crash, whether the
    effect is already in place (return its output) or must be done (return None).
    """

    name: str
    params_model: type[BaseModel]
    description: str

    def execute(
        self, context: StepContext, params: BaseModel, *, idempotency_key: str
    ) -> dict[str, Any]: ...

    def reconcile(self, context: StepContext, params: BaseModel) -> dict[str, Any] | None: ...
