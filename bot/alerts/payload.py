"""The Alertmanager webhook payload (version 4), validated with errors that name the field."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bot.errors import RollbotError, validation_reason

# Alertmanager writes this "zero time" as endsAt while an alert still fires.
_GO_ZERO_YEAR = 1
# The longest model name the store keeps.
MAX_MODEL_NAME = 200
# A longer generatorURL (Prometheus puts the URL-encoded rule expression in it) is dropped:
# it is only a link, and refusing it would refuse every alert of the group.
MAX_GENERATOR_URL = 2000


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
    generator_url: str | None = Field(default=None, alias="generatorURL")
    fingerprint: str = Field(min_length=1, max_length=100)

    @field_validator("starts_at")
    @classmethod
    def _started(cls, value: datetime) -> datetime:
        if value.year == _GO_ZERO_YEAR:
            raise ValueError("an alert must say when it started; got Go's zero time")
        return _utc(value)

    @field_validator("ends_at")
    @classmethod
    def _ended(cls, value: datetime | None) -> datetime | None:
        if value is None or value.year == _GO_ZERO_YEAR:
            return None
        return _utc(value)

    @field_validator("generator_url")
    @classmethod
    def _linkable(cls, value: str | None) -> str | None:
        return value if value is not None and len(value) <= MAX_GENERATOR_URL else None

    @property
    def alertname(self) -> str:
        """The alert's name label."""
        return self.labels.get("alertname", "")


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("timestamp needs a timezone (RFC 3339)")
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"timestamp {value.isoformat()} is out of range in UTC") from None


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


def parse_payload(raw: Any, *, model_label: str = "model") -> AlertmanagerPayload:
    """Validate a decoded JSON body; PayloadError names the first bad field.

    ``model_label`` is the label that names the model: its value must fit a model's name.
    """
    if not isinstance(raw, dict):
        raise PayloadError("the body must be a JSON object", field=None)
    if (where := _unstorable_text(raw, "")) is not None:
        raise PayloadError(
            "text holds a NUL character or an unpaired UTF-16 surrogate, which cannot be stored",
            field=where or None,
        )
    try:
        payload = AlertmanagerPayload.model_validate(raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        raise PayloadError(_message(error), field=field_path(error["loc"])) from None
    for index, alert in enumerate(payload.alerts):
        model = alert.labels.get(model_label)
        if model is not None and len(model) > MAX_MODEL_NAME:
            raise PayloadError(
                f"a model name has at most {MAX_MODEL_NAME} characters, got {len(model)}",
                field=f"alerts[{index}].labels.{model_label}",
            )
    return payload


def _unstorable_text(value: Any, path: str) -> str | None:
    """Where the first string (key or value) that no database can store is, if any."""
    if isinstance(value, str):
        return path if _unstorable(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            if _unstorable(str(key)):
                # The name itself cannot be shown as it is: escaped, so the answer can be sent.
                shown = str(key).encode("utf-8", "backslashreplace").decode("utf-8")
                return f"{path}.{shown}" if path else shown
            inner = f"{path}.{key}" if path else str(key)
            if (found := _unstorable_text(item, inner)) is not None:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            if (found := _unstorable_text(item, f"{path}[{index}]")) is not None:
                return found
    return None


def _unstorable(text: str) -> bool:
    if "\x00" in text:
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


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
    return validation_reason(error)
