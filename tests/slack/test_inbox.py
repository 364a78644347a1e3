"""The inbox: replays refused across web processes, follow-ups that survive a restart."""

from __future__ import annotations

from datetime import timedelta

import httpx
from slack_sdk import WebClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot.slack.app import RollbotSlackApp, create_slack_app
from bot.slack.follow_ups import FollowUpRunner
from bot.slack.inbox import Admission, FollowUp, admit, purge_expired
from bot.store import session_scope
from bot.store.models import Incident, SlackInbox, SlackInboxStatus
from bot.store.types import utcnow
from bot.web.app import create_app
from tests.slack.conftest import Rollbot, World, build_surface, rollbot_config, serving
from tests.support.fake_slack import FakeSlack
from tests.support.slack_signing import SIGNING_SECRET, signed_headers, slash_command


def _second_instance(
    rollbot: Rollbot, *, run_follow_ups: bool = True
) -> tuple[RollbotSlackApp, WebClient]:
    client = WebClient(token="xoxb-test", base_url=rollbot.fake.api_url)
    surface = build_surface(rollbot.engine, client, World(), rollbot_config())
    bolt = create_slack_app(
        surface, client=client, signing_secret=SIGNING_SECRET, run_follow_ups=run_follow_ups
    )
    return bolt, client


def _incidents(engine: Engine) -> int:
    with Session(engine) as session:
        return len(session.exec(select(Incident)).all())


def test_a_replay_sent_to_another_web_process_is_refused(rollbot: Rollbot) -> None:
    bolt, _ = _second_instance(rollbot)
    body, content_type = slash_command(
        "incident declare scores look off",
        user="UALICE",
        response_url=rollbot.fake.response_url("declare"),
    )
    headers = signed_headers(body, content_type=content_type)
    try:
        with serving(create_app(rollbot.engine, slack_app=bolt)) as other:
            first = httpx.post(f"{rollbot.base_url}/slack/events", content=body, headers=headers)
            assert rollbot.fake.reply_to("declare").startswith("Declared incident #1")

            replay = httpx.post(f"{other}/slack/events", content=body, headers=headers)
    finally:
        bolt.close()

    assert first.status_code == 200
    assert replay.status_code == 401
    assert replay.json() == {"error": "replayed request"}
    assert _incidents(rollbot.engine) == 1
    assert len(rollbot.fake.replies_to("declare")) == 1


def test_work_left_by_a_process_that_stopped_is_done_by_another(
    rollbot: Rollbot, fake_slack: FakeSlack
) -> None:
    bolt, client = _second_instance(rollbot, run_follow_ups=False)
    body, content_type = slash_command(
        "incident declare queued while nobody works",
        user="UALICE",
        response_url=fake_slack.response_url("later"),
    )
    with serving(create_app(rollbot.engine, slack_app=bolt)) as acking_only:
        response = httpx.post(
            f"{acking_only}/slack/events",
            content=body,
            headers=signed_headers(body, content_type=content_type),
        )
    assert response.status_code == 200
    with Session(rollbot.engine) as session:
        (row,) = session.exec(select(SlackInbox).where(SlackInbox.kind == "command")).all()
        assert row.status == SlackInboxStatus.PENDING

    # What the worker's follow-up job does, in a process that never saw the request.
    surface = build_surface(rollbot.engine, client, World(), rollbot_config())
    assert FollowUpRunner(surface, client).run_pending() == 1

    assert fake_slack.reply_to("later").startswith("Declared incident #1")
    with Session(rollbot.engine) as session:
        assert session.get(SlackInbox, row.key).status == SlackInboxStatus.DONE  # type: ignore[union-attr]


def test_a_follow_up_that_fails_tells_the_person_and_is_not_retried(
    rollbot: Rollbot, fake_slack: FakeSlack
) -> None:
    rollbot.world.registry_down = True
    url = fake_slack.response_url("down")
    body, content_type = slash_command("rollback fraud-detector", user="UALICE", response_url=url)

    assert rollbot.send(body, content_type).status_code == 200

    assert "connection refused" in fake_slack.reply_to("down")

    def stored() -> SlackInbox:
        with Session(rollbot.engine) as session:
            return session.exec(select(SlackInbox).where(SlackInbox.kind == "command")).one()

    # The reply goes out first and the row is marked right after: wait for the mark.
    assert fake_slack.wait_for(lambda: stored().status != SlackInboxStatus.PENDING)
    row = stored()
    assert row.status == SlackInboxStatus.FAILED and row.attempts == 1
    assert _incidents(rollbot.engine) == 0


def test_a_crashed_runner_lease_runs_out_and_the_work_is_taken_again(engine: Engine) -> None:
    follow_up = FollowUp("pin", {"channel": "C1", "ts": "1.0", "user": "UALICE"})
    admit(engine, [Admission("sig-lease", follow_up)])
    from bot.slack.inbox import claim

    (taken,) = claim(engine, limit=5, lease=timedelta(seconds=-1))  # it "dies" holding it

    assert taken.attempts == 1
    (again,) = claim(engine, limit=5, lease=timedelta(seconds=60))
    assert again.key == "sig-lease" and again.attempts == 2
    assert claim(engine, limit=5, lease=timedelta(seconds=60)) == []


def test_only_the_first_of_duplicate_keys_is_admitted(engine: Engine) -> None:
    assert admit(engine, [Admission("a"), Admission("b"), Admission("a")]) == [True, True, False]
    assert admit(engine, [Admission("b"), Admission("c")]) == [False, True]


def test_purging_forgets_expired_keys_but_keeps_pending_work(engine: Engine) -> None:
    admit(engine, [Admission("old"), Admission("old-work", FollowUp("pin", {}))])
    admit(engine, [Admission("fresh")])
    with session_scope(engine) as session:
        for key in ("old", "old-work"):
            row = session.get(SlackInbox, key)
            assert row is not None
            row.expires_at = utcnow() - timedelta(minutes=1)
            session.add(row)

    assert purge_expired(engine) == 1

    with Session(engine) as session:
        assert sorted(r.key for r in session.exec(select(SlackInbox)).all()) == [
            "fresh",
            "old-work",
        ]
    assert admit(engine, [Admission("fresh")]) == [False]
