"""Copy a Slack message into an incident's timeline, with its original time and author."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlmodel import select

from bot.incidents import channel as incident_channel
from bot.incidents import service as incidents
from bot.slack.surface import Surface
from bot.store import session_scope
from bot.store.models import TimelineEvent


@dataclass(frozen=True)
class CapturedMessage:
    """The parts of a Slack message the timeline keeps."""

    channel: str
    ts: str
    author: str | None
    text: str

    @classmethod
    def from_slack(cls, channel: str, message: dict[str, Any]) -> CapturedMessage:
        """Parse a message object from a payload, conversations.history or .replies."""
        return cls(
            channel=channel,
            ts=str(message["ts"]),
            author=message.get("user") or message.get("bot_id"),
            text=str(message.get("text") or ""),
        )

    @property
    def posted_at(self) -> datetime:
        """When it was posted: Slack's ts is Unix seconds."""
        return datetime.fromtimestamp(float(self.ts), UTC)


def read_message(client: WebClient, *, channel: str, ts: str) -> dict[str, Any] | None:
    """The message posted at ``ts`` in the channel or one of its threads; None if gone.

    conversations.history holds only top-level messages: asked for a thread reply it answers
    with the nearest earlier top-level message, so only an exact ts counts. A reply is read
    from its thread with conversations.replies, which takes the ts of any message in it.
    """
    history = client.conversations_history(channel=channel, latest=ts, inclusive=True, limit=1)
    found = _with_ts(history.get("messages"), ts)
    if found is not None:
        return found
    try:
        thread = client.conversations_replies(
            channel=channel, ts=ts, oldest=ts, latest=ts, inclusive=True
        )
    except SlackApiError as exc:
        if exc.response.get("error") == "thread_not_found":
            return None
        raise
    return _with_ts(thread.get("messages"), ts)


def _with_ts(messages: list[dict[str, Any]] | None, ts: str) -> dict[str, Any] | None:
    return next((message for message in messages or [] if message.get("ts") == ts), None)


def capture(
    surface: Surface, *, message: CapturedMessage, captured_by: str, via: str
) -> int | None:
    """Add the message to the channel's incident; the incident id, None when there is none.

    Capturing the same message twice (a shortcut and a reaction) adds it once.
    """
    with session_scope(surface.engine) as session:
        incident = incident_channel.for_channel(session, channel_id=message.channel)
        if incident is None:
            return None
        notes = session.exec(
            select(TimelineEvent)
            .where(TimelineEvent.incident_id == incident.id)
            .where(TimelineEvent.kind == "note")
        ).all()
        if any(note.details.get("slack_ts") == message.ts for note in notes):
            return incident.id
        incidents.add_note(
            session,
            incident=incident,
            text=message.text or "(message without text)",
            actor=message.author,
            source="slack",
            occurred_at=message.posted_at,
            pinned=True,
            details={
                "slack_ts": message.ts,
                "channel": message.channel,
                "captured_by": captured_by,
                "via": via,
            },
        )
        return incident.id
