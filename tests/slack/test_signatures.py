"""Only requests signed by Slack, recently, and once, get through; the rest change nothing."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from urllib.parse import urlencode

import httpx
import pytest
from sqlmodel import Session, col, select

from bot.slack.inbox import REPLAY_WINDOW
from bot.store.models import Incident, SlackInbox, TimelineEvent
from tests.slack.conftest import Rollbot
from tests.support.slack_signing import interactivity, sign, signed_headers, slash_command


def _nothing_stored(rollbot: Rollbot) -> bool:
    with Session(rollbot.engine) as session:
        return (
            not session.exec(select(Incident)).all()
            and not session.exec(select(TimelineEvent)).all()
        )


def _declare(rollbot: Rollbot) -> tuple[str, str]:
    return slash_command(
        "incident declare scores look off",
        user="UALICE",
        response_url=rollbot.fake.response_url("declare"),
    )


def test_a_signed_command_is_acknowledged_and_acted_on(rollbot: Rollbot) -> None:
    body, content_type = _declare(rollbot)

    response = rollbot.send(body, content_type)

    assert response.status_code == 200
    assert rollbot.fake.wait_for(lambda: bool(rollbot.fake.calls_to("response_url")))
    assert "Declared incident #1" in rollbot.fake.replies()[0]


def test_a_forged_signature_is_refused(rollbot: Rollbot) -> None:
    body, content_type = _declare(rollbot)
    headers = signed_headers(body, content_type=content_type, secret="not-the-secret")

    response = httpx.post(f"{rollbot.base_url}/slack/events", content=body, headers=headers)

    assert response.status_code == 401
    assert _nothing_stored(rollbot)


def test_a_timestamp_older_than_five_minutes_is_refused(rollbot: Rollbot) -> None:
    body, content_type = _declare(rollbot)
    stale = int(time.time()) - 5 * 60 - 10
    headers = signed_headers(body, content_type=content_type, timestamp=stale)

    response = httpx.post(f"{rollbot.base_url}/slack/events", content=body, headers=headers)

    assert response.status_code == 401
    assert _nothing_stored(rollbot)


def test_a_replayed_request_is_refused(rollbot: Rollbot) -> None:
    body, content_type = slash_command("incident list", user="UALICE")
    headers = signed_headers(body, content_type=content_type)
    first = httpx.post(f"{rollbot.base_url}/slack/events", content=body, headers=headers)
    declare, _ = _declare(rollbot)
    replay_headers = signed_headers(declare, content_type=content_type)
    httpx.post(f"{rollbot.base_url}/slack/events", content=declare, headers=replay_headers)
    assert rollbot.fake.wait_for(lambda: not _nothing_stored(rollbot))
    with Session(rollbot.engine) as session:
        before = len(session.exec(select(TimelineEvent)).all())

    again = httpx.post(f"{rollbot.base_url}/slack/events", content=declare, headers=replay_headers)

    assert first.status_code == 200
    assert again.status_code == 401
    with Session(rollbot.engine) as session:
        assert len(session.exec(select(Incident)).all()) == 1
        assert len(session.exec(select(TimelineEvent)).all()) == before


def test_a_body_changed_after_signing_is_refused(rollbot: Rollbot) -> None:
    body, content_type = _declare(rollbot)
    timestamp = int(time.time())
    headers = {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": str(timestamp),
        "X-Slack-Signature": sign(body, timestamp=timestamp),
    }
    tampered = body.replace("scores", "nothing")

    response = httpx.post(f"{rollbot.base_url}/slack/events", content=tampered, headers=headers)

    assert response.status_code == 401
    assert _nothing_stored(rollbot)


FORM = "application/x-www-form-urlencoded"


@pytest.mark.parametrize(
    ("body", "content_type"),
    [("payload=%7B%ZZ", FORM), ("payload=[1]", FORM), ("[1, 2]", "application/json")],
    ids=["bad-escape", "payload-not-object", "json-array"],
)
def test_unsigned_garbage_is_refused_before_it_is_read(
    rollbot: Rollbot, body: str, content_type: str
) -> None:
    headers = {"Content-Type": content_type, "X-Slack-Request-Timestamp": "abc"}

    response = httpx.post(f"{rollbot.base_url}/slack/events", content=body, headers=headers)

    assert response.status_code == 401
    assert response.json() == {"error": "invalid or stale signature"}


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ("payload=%7B%ZZ", FORM),
        ("payload=[1]", FORM),
        (interactivity({"type": "block_actions", "user": {"id": "UBOB"}, "actions": []})),
        (
            interactivity(
                {
                    "type": "block_actions",
                    "user": {"id": "UBOB"},
                    "actions": [{"action_id": "approve", "value": "abc"}],
                }
            )
        ),
        (
            interactivity(
                {"type": "block_actions", "actions": [{"action_id": "approve", "value": "1"}]}
            )
        ),
        (
            interactivity(
                {
                    "type": "block_actions",
                    "user": {"id": "UBOB"},
                    "actions": [{"action_id": "an-old-button", "value": "1"}],
                }
            )
        ),
        (urlencode({"command": "/rollbot", "text": "incident list"}), FORM),
    ],
    ids=[
        "bad-escape",
        "payload-not-object",
        "no-actions",
        "id-not-number",
        "no-user",
        "unknown-button",
        "command-without-user",
    ],
)
def test_signed_but_malformed_requests_are_answered_and_change_nothing(
    rollbot: Rollbot, body: str, content_type: str
) -> None:
    response = rollbot.send(body, content_type)

    assert response.status_code in (200, 400), response.text
    assert _nothing_stored(rollbot)
    with Session(rollbot.engine) as session:
        assert session.exec(select(SlackInbox).where(col(SlackInbox.kind).is_not(None))).all() == []


def test_a_replay_key_lasts_as_long_as_a_signature_from_a_clock_ahead_is_valid(
    rollbot: Rollbot,
) -> None:
    sent = int(time.time()) + 290  # Slack's clock is ahead of ours; bolt accepts it
    body, content_type = _declare(rollbot)
    headers = signed_headers(body, content_type=content_type, timestamp=sent)

    response = httpx.post(f"{rollbot.base_url}/slack/events", content=body, headers=headers)

    assert response.status_code == 200
    with Session(rollbot.engine) as session:
        [row] = session.exec(select(SlackInbox)).all()
    assert row.expires_at >= datetime.fromtimestamp(sent, UTC) + REPLAY_WINDOW
