"""Incident channels: one per incident, named from the prefix, the model and the date."""

from __future__ import annotations

import re
from datetime import datetime

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

_MAX_SUFFIX = 20


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


def invite(client: WebClient, *, channel: str, users: list[str]) -> None:
    """Invite the users (already expanded from user groups) to the channel."""
    users = [user for user in users if user]
    if users:
        client.conversations_invite(channel=channel, users=",".join(users))
