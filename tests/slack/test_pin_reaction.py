"""The 📌 reaction copies exactly the message it was put on, thread replies included."""

from __future__ import annotations

from sqlmodel import Session, col, select

from bot.store.models import SlackInbox, SlackInboxStatus, TimelineEvent
from tests.slack.conftest import MODEL, Rollbot
from tests.slack.helpers import command
from tests.support.slack_signing import event

PARENT_TS = "1767605400.000100"  # 2026-01-05 09:30 UTC, long before the headline
REPLY_TS = "1767605430.000200"
LATER_TS = "1767605460.000300"


def _incident_channel(rollbot: Rollbot) -> str:
    command(rollbot, f"incident declare {MODEL} sev2 scores drifted", user="UALICE")
    name = rollbot.fake.calls_to("conversations.create")[0].args["name"]
    return rollbot.fake.state.channels[name]


def _post(rollbot: Rollbot, channel: str, ts: str, *, user: str, text: str, **extra: str) -> None:
    message = {"type": "message", "ts": ts, "user": user, "text": text, **extra}
    rollbot.fake.state.messages[f"{channel}/{ts}"] = message


def _a_thread(rollbot: Rollbot, channel: str) -> None:
    """A question, an answer in its thread, and a later top-level message."""
    _post(rollbot, channel, PARENT_TS, user="UDAVE", text="why did scores drift?")
    _post(
        rollbot,
        channel,
        REPLY_TS,
        user="UERIN",
        text="feature store lag was the trigger",
        thread_ts=PARENT_TS,
        parent_user_id="UDAVE",
    )
    _post(rollbot, channel, LATER_TS, user="UFRANK", text="rolling back now")


def _pin(rollbot: Rollbot, channel: str, ts: str) -> None:
    body, content_type = event(
        {
            "type": "reaction_added",
            "user": "UCAROL",
            "reaction": "pushpin",
            "item": {"type": "message", "channel": channel, "ts": ts},
            "item_user": "UERIN",
            "event_ts": "1767605500.000400",
        }
    )
    assert rollbot.send(body, content_type).status_code == 200
    assert rollbot.fake.wait_for(lambda: _pins_pending(rollbot) == 0)


def _pins_pending(rollbot: Rollbot) -> int:
    with Session(rollbot.engine) as session:
        rows = session.exec(select(SlackInbox).where(SlackInbox.kind == "pin")).all()
        finished = (SlackInboxStatus.DONE, SlackInboxStatus.FAILED)
        return sum(row.status not in finished for row in rows)


def _notes(rollbot: Rollbot) -> list[tuple[str | None, str, str | None]]:
    """(author, text, Slack ts) of every note on the timeline."""
    with Session(rollbot.engine) as session:
        notes = session.exec(
            select(TimelineEvent)
            .where(TimelineEvent.kind == "note")
            .order_by(col(TimelineEvent.seq))
        ).all()
        return [(n.actor, n.summary, n.details.get("slack_ts")) for n in notes]


def test_a_pin_on_a_thread_reply_records_that_reply_and_its_author(rollbot: Rollbot) -> None:
    channel = _incident_channel(rollbot)
    _a_thread(rollbot, channel)

    _pin(rollbot, channel, REPLY_TS)

    assert _notes(rollbot) == [("UERIN", "feature store lag was the trigger", REPLY_TS)]
    [replies] = rollbot.fake.calls_to("conversations.replies")
    assert replies.args["ts"] == REPLY_TS
    assert rollbot.fake.calls_to("chat.postEphemeral") == []


def test_a_pin_on_a_top_level_message_records_that_message(rollbot: Rollbot) -> None:
    channel = _incident_channel(rollbot)
    _a_thread(rollbot, channel)

    _pin(rollbot, channel, PARENT_TS)
    _pin(rollbot, channel, LATER_TS)

    assert _notes(rollbot) == [
        ("UDAVE", "why did scores drift?", PARENT_TS),
        ("UFRANK", "rolling back now", LATER_TS),
    ]
    assert rollbot.fake.calls_to("conversations.replies") == []


def test_a_pin_on_a_message_slack_no_longer_has_records_nothing_and_says_so(
    rollbot: Rollbot,
) -> None:
    channel = _incident_channel(rollbot)
    _a_thread(rollbot, channel)
    gone = "1767605445.000500"  # deleted before the follow-up read it

    _pin(rollbot, channel, gone)

    assert _notes(rollbot) == []
    [warning] = rollbot.fake.calls_to("chat.postEphemeral")
    assert warning.args["user"] == "UCAROL" and warning.args["channel"] == channel
    assert "nothing was added to the timeline" in warning.args["text"]
