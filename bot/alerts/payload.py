"""The Alertmanager webhook payload (version 4), validated with errors that name the field."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bot.errors import RollbotError

# Alertmanager writes this "zero time" as endsAt while an alert still fires.
_GO_ZERO_YEAR = 1


class PayloadError(RollbotError):
    """A webhook payload that cannot be accepted; ``field`` says where, as ``alerts[3].labels``."""

    def __init__(self, message: str, *, field: str | None) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.reason = message
        self.field = field


class _Strict(BaseModel):
    # Alertmanager adds fields over time; unknown ones are ignored, known ones are checked.
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class AlertPayload(_Strict):
    """One alert in a notification."""

    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: datetime = Field(alias="startsAt")
    ends_at: datetime | None = Field(default=None, alias="endsAt")
    generator_url: str | None = Field(default=None, alias="generatorURL", max_length=2000)
    fingerprint: str = Field(min_length=1, max_length=100)

    @field_validator("starts_at", "ends_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("timestamp needs a timezone (RFC 3339)")
        if value.year == _GO_ZERO_YEAR:
            return None
        return value.astimezone(UTC)

    @property
    def alertname(self) -> str:
        """The alert's name label."""
        return self.labels.get("alertname", "")


class AlertmanagerPayload(_Strict):
    """A whole webhook notification: one group of alerts."""

    version: Literal["4"]
    status: Literal["firing", "resolved"]
    receiver: str = ""
    group_key: str = Field(default="", alias="groupKey")
    group_labels: dict[str, str] = Field(default_factory=dict, alias="groupLabels")
    external_url: str = Field(default="", alias="externalURL")
    truncated_alerts: int = Field(default=0, alias="truncatedAlerts", ge=0)
    alerts: list[AlertPayload]


def parse_payload(raw: Any) -> AlertmanagerPayload:
    """Validate a decoded JSON body; PayloadError names the first bad field."""
    if not isinstance(raw, dict):
        raise PayloadError("the body must be a JSON object", field=None)
    try:
        return AlertmanagerPayload.model_validate(raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        raise PayloadError(_message(error), field=field_path(error["loc"])) from None


def field_path(loc: tuple[int | str, ...]) -> str:
    """A pydantic location as people write it: ``alerts[3].labels``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _message(error: Any) -> str:
    if error["type"] == "missing":
        return "required field is missing"
    if error["type"] == "literal_error" and error["loc"] == ("version",):
        return f"unsupported payload version {error.get('input')!r}; Alertmanager sends '4'"
    return str(error["msg"])
