"""Only requests signed by Slack, recently, and once, get through; the rest change nothing."""

from __future__ import annotations

import time

import httpx
from sqlmodel import Session, select

from bot.store.models import Incident, TimelineEvent
from tests.slack.conftest import Rollbot
from tests.support.slack_signing import sign, signed_headers, slash_command


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
