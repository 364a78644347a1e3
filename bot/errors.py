"""Domain errors: what went wrong, said so a person can act on it.

The edges (Slack, web, CLI) turn these into a short message; they never carry a traceback to
the user.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class RollbotError(Exception):
    """Base of every error Rollbot reports to a user."""


class ConfigError(RollbotError):
    """The configuration file is invalid; the message names the file, line and field."""


class NotFoundError(RollbotError):
    """An incident, model, run or approval request that does not exist."""


class ConflictError(RollbotError):
    """The request clashes with the current state (an active run, a resolved incident)."""


class PolicyViolation(RollbotError):
    """An approval policy refuses the action; the message says which rule and why."""


def validation_reason(error: Mapping[str, Any]) -> str:
    """A pydantic error's message as a person reads it: a validator's own words as they are,
    without pydantic's "Value error, " in front."""
    return str(error["msg"]).removeprefix("Value error, ")
