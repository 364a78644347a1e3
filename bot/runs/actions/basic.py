"""Actions that touch no integration: wait, notify."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import BaseModel, Field

from bot.config.durations import Duration, format_duration
from bot.runs.actions.base import ActionParams, typed
from bot.runs.contracts import StepContext


class WaitParams(ActionParams):
    """How long to wait."""

    duration: Duration

    def least_duration(self) -> tuple[str, timedelta] | None:
        return "duration", self.duration


class Wait:
    """``wait``: let a stage bake before it is checked."""

    name = "wait"
    params_model: type[BaseModel] = WaitParams
    description = "Wait for a duration (a bake time between stages)."

    def execute(
        self, context: StepContext, params: BaseModel, *, idempotency_key: str
    ) -> dict[str, Any]:
        p = typed(params, WaitParams)
        context.sleep(p.duration.total_seconds())
        return {"waited": format_duration(p.duration)}

    def reconcile(self, context: StepContext, params: BaseModel) -> dict[str, Any] | None:
        return None  # a wait cut short by a crash is simply waited again


class NotifyParams(ActionParams):
    """The note to add to the timeline."""

    message: str = Field(min_length=1, max_length=3000)


class Notify:
    """``notify``: a note in the incident timeline (the engine posts it to the channel)."""

    name = "notify"
    params_model: type[BaseModel] = NotifyParams
    description = "Add a note to the incident timeline and channel."

    def execute(
        self, context: StepContext, params: BaseModel, *, idempotency_key: str
    ) -> dict[str, Any]:
        p = typed(params, NotifyParams)
        context.notes.append(p.message)
        return {"note": p.message}

    def reconcile(self, context: StepContext, params: BaseModel) -> dict[str, Any] | None:
        return None
