"""Requests signed exactly as Slack signs them, for the /slack/events endpoint."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any
from urllib.parse import urlencode

SIGNING_SECRET = "test-signing-secret"


def sign(body: str, *, timestamp: int, secret: str = SIGNING_SECRET) -> str:
    """``v0=`` + HMAC-SHA256 of ``v0:{timestamp}:{body}``."""
    base = f"v0:{timestamp}:{body}".encode()
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def signed_headers(
    body: str, *, content_type: str, timestamp: int | None = None, secret: str = SIGNING_SECRET
) -> dict[str, str]:
    """Headers Slack sends with a request body."""
    ts = int(time.time()) if timestamp is None else timestamp
    return {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": str(ts),
        "X-Slack-Signature": sign(body, timestamp=ts, secret=secret),
    }


def slash_command(
    text: str,
    *,
    user: str,
    channel: str = "C0GENERAL",
    command: str = "/rollbot",
    response_url: str = "",
    trigger_id: str = "1.2.3",
) -> tuple[str, str]:
    """A form-encoded slash command body and its content type."""
    body = urlencode(
        {
            "token": "legacy",
            "team_id": "T1",
            "team_domain": "acme",
            "channel_id": channel,
            "channel_name": "general",
            "user_id": user,
            "user_name": user.lower(),
            "command": command,
            "text": text,
            "api_app_id": "A1",
            "response_url": response_url,
            "trigger_id": trigger_id,
        }
    )
    return body, "application/x-www-form-urlencoded"


def interactivity(payload: dict[str, Any]) -> tuple[str, str]:
    """An interactivity body: ``payload=`` holding JSON."""
    return urlencode({"payload": json.dumps(payload)}), "application/x-www-form-urlencoded"


def block_action(
    *,
    action_id: str,
    value: str,
    user: str,
    channel: str = "C0GENERAL",
    message_ts: str = "1700000000.000100",
    response_url: str = "",
) -> tuple[str, str]:
    """A button click on a message."""
    return interactivity(
        {
            "type": "block_actions",
            "team": {"id": "T1", "domain": "acme"},
            "user": {"id": user, "username": user.lower(), "team_id": "T1"},
            "api_app_id": "A1",
            "token": "legacy",
            "container": {"type": "message", "message_ts": message_ts, "channel_id": channel},
            "trigger_id": "1.2.3",
            "channel": {"id": channel, "name": "incident"},
            "message": {"type": "message", "ts": message_ts, "text": "card"},
            "response_url": response_url,
            "actions": [
                {
                    "type": "button",
                    "action_id": action_id,
                    "block_id": "decision",
                    "value": value,
                    "action_ts": str(time.time()),
                }
            ],
        }
    )


def message_shortcut(
    *, callback_id: str, user: str, channel: str, message: dict[str, Any], response_url: str = ""
) -> tuple[str, str]:
    """A message shortcut invoked on a message."""
    return interactivity(
        {
            "type": "message_action",
            "callback_id": callback_id,
            "team": {"id": "T1", "domain": "acme"},
            "user": {"id": user, "name": user.lower()},
            "channel": {"id": channel, "name": "incident"},
            "message": message,
            "message_ts": message["ts"],
            "trigger_id": "1.2.3",
            "response_url": response_url,
            "token": "legacy",
        }
    )


def event(inner: dict[str, Any]) -> tuple[str, str]:
    """An Events API callback wrapping ``inner``."""
    body = {
        "token": "legacy",
        "team_id": "T1",
        "api_app_id": "A1",
        "event": inner,
        "type": "event_callback",
        "event_id": f"Ev{int(time.time() * 1000)}",
        "event_time": int(time.time()),
        "authorizations": [{"team_id": "T1", "user_id": "UBOT", "is_bot": True}],
    }
    return json.dumps(body), "application/json"
