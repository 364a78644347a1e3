"""One channel per incident, however many callers open it at once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from slack_sdk import WebClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot.incidents import service as incidents
from bot.store import session_scope
from bot.store.models import Incident, TimelineEvent
from tests.slack.conftest import MODEL, Rollbot, World, build_surface, rollbot_config
from tests.support.fake_slack import FakeSlack


def _declare(rollbot: Rollbot) -> int:
    with session_scope(rollbot.engine) as session:
        incident = incidents.declare(
            session, title="scores drifted", actor="UALICE", source="test", model=MODEL
        )
    assert incident.id is not None
    return incident.id


def _channel(rollbot: Rollbot, incident_id: int) -> str | None:
    with Session(rollbot.engine) as session:
        incident = session.get(Incident, incident_id)
        assert incident is not None
        return incident.channel_id


def test_concurrent_openers_create_one_channel(rollbot: Rollbot) -> None:
    incident_id = _declare(rollbot)
    notifier = rollbot.surface.notifier

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda _: notifier.incident_opened(incident_id=incident_id), range(8)))

    (created,) = rollbot.fake.calls_to("conversations.create")
    channel = rollbot.fake.state.channels[created.args["name"]]
    assert _channel(rollbot, incident_id) == channel
    assert len(rollbot.fake.calls_to("chat.postMessage")) == 1  # one headline


def test_a_failed_creation_releases_the_claim_for_the_next_try(rollbot: Rollbot) -> None:
    incident_id = _declare(rollbot)
    rollbot.fake.state.failing["conversations.create"] = "restricted_action"

    rollbot.surface.notifier.incident_opened(incident_id=incident_id)

    assert _channel(rollbot, incident_id) is None
    del rollbot.fake.state.failing["conversations.create"]
    rollbot.surface.notifier.incident_opened(incident_id=incident_id)
    name = rollbot.fake.calls_to("conversations.create")[-1].args["name"]
    assert _channel(rollbot, incident_id) == rollbot.fake.state.channels[name]


def test_people_slack_will_not_invite_leave_the_channel_in_use_and_are_on_the_timeline(
    engine: Engine, fake_slack: FakeSlack
) -> None:
    fake_slack.state.uninvitable["UGONE"] = "cant_invite"  # e.g. a deactivated account
    config = rollbot_config()
    owners = ["UOWNER", "UGONE", "SNOSUCHGROUP"]  # the group does not exist (any more)
    owned = config.models[MODEL].model_copy(update={"owners": owners})
    config = config.model_copy(update={"models": {MODEL: owned}})
    client = WebClient(token="xoxb-test", base_url=fake_slack.api_url)
    notifier = build_surface(engine, client, World(), config).notifier
    with session_scope(engine) as session:
        incident = incidents.declare(
            session, title="scores drifted", actor="UALICE", source="test", model=MODEL
        )
    assert incident.id is not None

    notifier.incident_opened(incident_id=incident.id)
    notifier.incident_opened(incident_id=incident.id)  # a later proposal opens it again

    (created,) = fake_slack.calls_to("conversations.create")
    channel = fake_slack.state.channels[created.args["name"]]
    with Session(engine) as session:
        opened = session.get(Incident, incident.id)
        assert opened is not None
        assert opened.channel_id == channel and opened.headline_ts is not None
        [left_out] = session.exec(
            select(TimelineEvent).where(TimelineEvent.kind == "incident.invite_failed")
        ).all()
    assert fake_slack.state.members[channel] == ["UOWNER", "UALICE"]
    assert left_out.incident_id == incident.id
    assert left_out.details == {
        "refused": {"UGONE": "cant_invite", "SNOSUCHGROUP": "no_such_subteam"}
    }
    assert "UGONE (cant_invite)" in left_out.summary


def test_an_enterprise_grid_declarer_is_invited_too(rollbot: Rollbot) -> None:
    with session_scope(rollbot.engine) as session:
        incident = incidents.declare(
            session, title="scores drifted", actor="W0GRIDUSER", source="test", model=MODEL
        )
    assert incident.id is not None

    rollbot.surface.notifier.incident_opened(incident_id=incident.id)

    channel = _channel(rollbot, incident.id)
    assert channel is not None and "W0GRIDUSER" in rollbot.fake.state.members[channel]
