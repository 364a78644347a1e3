"""Copy a Slack message into an incident's timeline, with its original time and author."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlmodel import select

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
        """Parse a message object from a payload or conversations.history."""
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


def capture(
    surface: Surface, *, message: CapturedMessage, captured_by: str, via: str
) -> int | None:
    """Add the message to the channel's incident; the incident id, None when there is none.

    Capturing the same message twice (a shortcut and a reaction) adds it once.
    """
    with session_scope(surface.engine) as session:
        incident = incidents.for_channel(session, channel_id=message.channel)
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
