"""What every action shares: strict parameter models and finding the component to act on."""

from __future__ import annotations

from datetime import timedelta
from typing import TypeVar

from pydantic import BaseModel, ConfigDict

from bot.errors import NotFoundError
from bot.runs.contracts import Component, StepContext

P = TypeVar("P", bound=BaseModel)


class ActionParams(BaseModel):
    """Base of every action's parameters: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def least_duration(self) -> tuple[str, timedelta] | None:
        """The parameter that makes the action take at least this long, if any: a step's
        timeout must be longer, or the step can never finish."""
        return None


def typed(params: BaseModel, model: type[P]) -> P:
    """The parameters as the action's own model (re-validated when handed another one)."""
    if isinstance(params, model):
        return params
    return model.model_validate(params.model_dump())


def component_of(context: StepContext, name: str | None) -> Component:
    """The component a step acts on: the model itself unless ``component`` names another."""
    try:
        return context.component(name)
    except KeyError:
        known = ", ".join(sorted(context.components)) or "none"
        raise NotFoundError(
            f"unknown component {name!r} of model {context.model!r} (known: {known})"
        ) from None
