"""Incident channels: one per incident, named from the prefix, the model and the date."""

from __future__ import annotations

import re
import time
import uuid
from datetime import datetime
from typing import TypeGuard

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy import update
from sqlalchemy.engine import Engine

from bot.store.models import Incident

_MAX_SUFFIX = 20
CLAIM_PREFIX = "claim:"  # an incident's channel_id while one caller is creating its channel


def is_channel(channel_id: str | None) -> TypeGuard[str]:
    """Whether ``channel_id`` names a real channel (not nothing, not a creation claim)."""
    return bool(channel_id) and not str(channel_id).startswith(CLAIM_PREFIX)


def claim_channel(engine: Engine, *, incident_id: int) -> str | None:
    """Claim the right to create the incident's channel; the claim, None if someone has it.

    A conditional update from NULL: of concurrent callers exactly one sees its row change.
    """
    claim = f"{CLAIM_PREFIX}{uuid.uuid4().hex[:16]}"
    with engine.begin() as connection:
        result = connection.execute(
            update(Incident)
            .where(Incident.id == incident_id)  # type: ignore[arg-type]
            .where(Incident.channel_id.is_(None))  # type: ignore[union-attr]
            .values(channel_id=claim)
        )
    return claim if result.rowcount == 1 else None


def release_claim(engine: Engine, *, incident_id: int, claim: str) -> None:
    """Give the claim up (creating the channel failed) so that a later call may try again."""
    with engine.begin() as connection:
        connection.execute(
            update(Incident)
            .where(Incident.id == incident_id)  # type: ignore[arg-type]
            .where(Incident.channel_id == claim)  # type: ignore[arg-type]
            .values(channel_id=None)
        )


def wait_for_channel(engine: Engine, *, incident_id: int, timeout: float = 15) -> str | None:
    """The channel another caller is creating, once it exists (None if it never does)."""
    deadline = time.monotonic() + timeout
    while True:
        with engine.connect() as connection:
            channel_id = connection.scalar(
                Incident.__table__.select()  # type: ignore[attr-defined]
                .with_only_columns(Incident.__table__.c.channel_id)  # type: ignore[attr-defined]
                .where(Incident.__table__.c.id == incident_id)  # type: ignore[attr-defined]
            )
        if channel_id is None or is_channel(channel_id) or time.monotonic() > deadline:
            return channel_id if is_channel(channel_id) else None
        time.sleep(0.05)


def channel_name(*, prefix: str, subject: str, day: datetime) -> str:
    """``{prefix}{subject}-{yyyymmdd}`` in the characters Slack allows."""
    slug = re.sub(r"[^a-z0-9_-]+", "-", subject.lower()).strip("-") or "incident"
    return f"{prefix}{slug}"[:70] + f"-{day:%Y%m%d}"


def create_channel(client: WebClient, *, name: str) -> str:
    """Create the channel, adding -2, -3, … while the name is taken; its id."""
    for attempt in range(1, _MAX_SUFFIX + 1):
        candidate = name if attempt == 1 else f"{name}-{attempt}"
        try:
            response = client.conversations_create(name=candidate)
        except SlackApiError as exc:
            if exc.response.get("error") == "name_taken":
                continue
            raise
        return str(response["channel"]["id"])
    raise RuntimeError(f"Slack channel names {name} to {name}-{_MAX_SUFFIX} are all taken")


def invite(client: WebClient, *, channel: str, users: list[str]) -> dict[str, str]:
    """Invite the users (already expanded from user groups); those Slack refused, with why.

    Without ``force`` one refused user (a deactivated account, a guest) keeps everyone out.
    """
    users = [user for user in users if user]
    if not users:
        return {}
    try:
        client.conversations_invite(channel=channel, users=",".join(users), force=True)
    except SlackApiError as exc:
        each = exc.response.get("errors") or [
            {"user": user, "error": exc.response.get("error")} for user in users
        ]
        return {
            str(item.get("user")): str(item.get("error"))
            for item in each
            if item.get("error") != "already_in_channel"
        }
    return {}
