"""One channel per incident, however many callers open it at once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from sqlmodel import Session

from bot.incidents import service as incidents
from bot.store import session_scope
from bot.store.models import Incident
from tests.slack.conftest import MODEL, Rollbot


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
