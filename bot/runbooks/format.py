"""The runbook file format, as pydantic models. Unknown keys are errors: typos must not pass.

Step ``params`` stay raw here (they may hold Jinja2); they are rendered and validated against
the action's own parameter model when a plan is made, and by ``rollbot runbooks check``.
"""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from bot.config.durations import Duration, format_duration, parse_duration
from bot.runbooks.problems import FieldPath, LineMap, display_path, field_name, line_of
from bot.runs.contracts import OnFailure, RetryPolicy

NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ParameterType(StrEnum):
    """The types a runbook parameter may have."""

    STRING = "string"
    INTEGER = "integer"
    NUMBER = "number"
    BOOLEAN = "boolean"
    DURATION = "duration"


class ParameterSpec(_Strict):
    """A typed runbook parameter; without a default it must be given when a plan is made."""

    type: ParameterType = ParameterType.STRING
    default: Any = None
    description: str = ""

    @model_validator(mode="after")
    def _default_has_the_type(self) -> ParameterSpec:
        if self.default is not None:
            self.coerce(self.default)
        return self

    @property
    def required(self) -> bool:
        """Whether a value must be supplied."""
        return self.default is None

    def coerce(self, value: Any) -> Any:
        """The value as this type, in its JSON form (durations as ``5m``); ValueError if not."""
        kind = self.type
        if kind is ParameterType.DURATION:
            return format_duration(parse_duration(value))
        if kind is ParameterType.BOOLEAN:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "false"):
                return value.lower() == "true"
        elif kind is ParameterType.INTEGER:
            if isinstance(value, int) and not isinstance(value, bool):
                return value
            if isinstance(value, str) and value.strip().lstrip("-").isdigit():
                return int(value)
        elif kind is ParameterType.NUMBER:
            if isinstance(value, int | float) and not isinstance(value, bool):
                return value
            if isinstance(value, str):
                try:
                    return float(value)
                except ValueError:
                    pass
        elif isinstance(value, str):
            return value
        raise ValueError(f"expected a {kind.value}, got {value!r}")


class RetrySpec(_Strict):
    """Retries of a step on retryable integration errors, with exponential backoff."""

    max_attempts: int = Field(default=3, ge=1, le=20)
    initial_backoff: Duration = timedelta(seconds=2)
    max_backoff: Duration = timedelta(seconds=60)

    def policy(self) -> RetryPolicy:
        """The engine's form of this policy."""
        return RetryPolicy(
            max_attempts=self.max_attempts,
            initial_backoff_seconds=self.initial_backoff.total_seconds(),
            max_backoff_seconds=self.max_backoff.total_seconds(),
        )


class CompensationSpec(_Strict):
    """The step that undoes a step; it runs when the run fails after that step succeeded."""

    name: str = Field(min_length=1, max_length=200)
    action: str
    params: dict[str, Any] = Field(default_factory=dict)
    # None: DEFAULT_STEP_TIMEOUT beyond the least time the action takes (a wait's duration).
    timeout: Duration | None = None
    retry: RetrySpec = RetrySpec()


class StepSpec(CompensationSpec):
    """One step of a runbook as written."""

    on_failure: OnFailure = OnFailure.STOP
    compensation: CompensationSpec | None = None
    for_each_component: bool = False
    when: str | None = None

    @model_validator(mode="after")
    def _compensate_needs_a_compensation(self) -> StepSpec:
        if self.on_failure is OnFailure.COMPENSATE and self.compensation is None:
            raise ValueError("on_failure 'compensate' needs a 'compensation' step")
        return self


class Runbook(_Strict):
    """A rollback runbook: typed parameters and ordered steps."""

    name: str = Field(pattern=NAME_PATTERN, max_length=200)
    description: str = ""
    parameters: dict[str, ParameterSpec] = Field(default_factory=dict)
    approval_policy: str | None = None
    steps: list[StepSpec] = Field(min_length=1)

    _path: Path | None = PrivateAttr(default=None)
    _lines: LineMap = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _step_names_are_unique(self) -> Runbook:
        seen: set[str] = set()
        for index, step in enumerate(self.steps):
            if step.name in seen and not step.for_each_component:
                # A ValidationError rather than a ValueError, so the problem points at the
                # second step's name instead of the runbook's first line.
                reason = PydanticCustomError(
                    "value_error", "two steps are named {name}", {"name": repr(step.name)}
                )
                detail = InitErrorDetails(
                    type=reason, loc=("steps", index, "name"), input=step.name
                )
                raise ValidationError.from_exception_data(type(self).__name__, [detail])
            seen.add(step.name)
        return self

    def located(self, path: Path, lines: LineMap) -> Runbook:
        """Remember the file this runbook came from and where each field is in it."""
        self._path = path
        self._lines = lines
        return self

    @property
    def path(self) -> Path | None:
        """The file the runbook was loaded from."""
        return self._path

    @property
    def source(self) -> str:
        """The file name to show in messages."""
        return display_path(self._path) if self._path else f"<runbook {self.name}>"

    def where(self, path: FieldPath) -> str:
        """``file:line: field`` for a field of this runbook."""
        return f"{self.source}:{line_of(path, self._lines)}: {field_name(path)}"

    def line(self, path: FieldPath) -> int:
        """The line of a field (or its nearest ancestor)."""
        return line_of(path, self._lines)
