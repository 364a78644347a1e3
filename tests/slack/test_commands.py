"""`/rollbot` over HTTP: replies people see, and what the database holds afterwards."""

from __future__ import annotations

from slack_sdk import WebClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot.incidents import service as incidents
from bot.store import session_scope
from bot.store.models import ApprovalRequest, Incident, TimelineEvent
from tests.slack.conftest import MODEL, Rollbot, World, build_surface, rollbot_config
from tests.slack.helpers import command, propose
from tests.support.fake_slack import FakeSlack
from tests.support.slack_signing import slash_command


def _count(rollbot: Rollbot, table: type) -> int:
    with Session(rollbot.engine) as session:
        return len(session.exec(select(table)).all())


def test_help_and_usage_are_answered_in_the_ack(rollbot: Rollbot) -> None:
    body, content_type = slash_command("help", user="UALICE")
    response = rollbot.send(body, content_type)
    assert response.status_code == 200
    assert response.json()["response_type"] == "ephemeral"
    assert "/rollbot rollback MODEL [to VERSION]" in response.json()["text"]

    assert command(rollbot, "frobnicate", user="UALICE").startswith("Unknown command `frobnicate`")
    assert "Usage: `incident sev" in command(rollbot, "incident sev extreme", user="UALICE")
    assert _count(rollbot, TimelineEvent) == 0


def test_declaring_opens_a_channel_invites_responders_and_posts_a_headline(
    rollbot: Rollbot,
) -> None:
    reply = command(rollbot, f"incident declare {MODEL} sev2 scores look off", user="UALICE")

    assert reply.startswith("Declared incident #1: scores look off in <#C")
    [create] = rollbot.fake.calls_to("conversations.create")
    assert create.args["name"].startswith(f"inc-{MODEL}-20")
    [invite] = rollbot.fake.calls_to("conversations.invite")
    assert invite.args["users"] == "UALICE"
    [headline] = rollbot.fake.calls_to("chat.postMessage")
    assert "sev2" in str(headline.args["blocks"])
    with Session(rollbot.engine) as session:
        incident = session.exec(select(Incident)).one()
        assert incident.channel_id == create.args.get("_id", incident.channel_id)
        assert incident.headline_ts is not None and incident.severity == "sev2"


def test_a_taken_channel_name_gets_a_suffix(rollbot: Rollbot) -> None:
    command(rollbot, "incident declare first outage", user="UALICE")
    command(rollbot, "incident resolve 1", user="UALICE")
    rollbot.fake.state.channels["inc-incident-2-" + "x"] = "CX"  # unrelated name
    names = [c.args["name"] for c in rollbot.fake.calls_to("conversations.create")]
    rollbot.fake.state.channels[names[0].replace("incident-1", "incident-2")] = "CTAKEN"

    command(rollbot, "incident declare second outage", user="UALICE")

    created = [c.args["name"] for c in rollbot.fake.calls_to("conversations.create")]
    assert created[-1] == created[-2] + "-2"


def test_declaring_twice_for_one_model_says_so_and_changes_nothing(rollbot: Rollbot) -> None:
    command(rollbot, f"incident declare {MODEL} degraded", user="UALICE")
    events = _count(rollbot, TimelineEvent)

    reply = command(rollbot, f"incident declare {MODEL} again", user="UBOB")

    assert reply == f":warning: {MODEL} already has an open incident: #1 degraded"
    assert _count(rollbot, Incident) == 1 and _count(rollbot, TimelineEvent) == events


def test_severity_changes_update_the_headline_in_place(rollbot: Rollbot) -> None:
    command(rollbot, "incident declare checkout errors", user="UALICE")
    channel = rollbot.fake.calls_to("conversations.create")[0]
    incident_channel = rollbot.fake.state.channels[channel.args["name"]]

    reply = command(rollbot, "incident sev sev1", user="UBOB", channel=incident_channel)

    assert reply == "Incident #1 is now sev1."
    [update] = rollbot.fake.calls_to("chat.update")
    assert "sev1" in str(update.args["blocks"])


def test_rollback_with_no_safe_version_proposes_nothing(rollbot: Rollbot) -> None:
    rollbot.world.safe = None

    reply = command(rollbot, f"rollback {MODEL}", user="UALICE")

    assert reply == f":warning: no safe version of {MODEL} to roll back to: 4 had an incident"
    assert _count(rollbot, ApprovalRequest) == 0
    assert _count(rollbot, Incident) == 0 and _count(rollbot, TimelineEvent) == 0


def test_rollback_of_an_unknown_model_names_the_known_ones(rollbot: Rollbot) -> None:
    reply = command(rollbot, "rollback spam-filter", user="UALICE")

    assert reply == f":warning: unknown model 'spam-filter' (known: {MODEL})"
    assert _count(rollbot, ApprovalRequest) == 0


def test_a_rollback_request_posts_the_approval_card_in_the_incident_channel(
    rollbot: Rollbot,
) -> None:
    propose(rollbot, extra="because auc dropped")

    cards = [c for c in rollbot.fake.calls_to("chat.postMessage") if "Approve" in str(c.args)]
    [card] = cards
    text = str(card.args["blocks"])
    for expected in ("5 → 4", "announce", "auc dropped", "<@UALICE>", "2 approval(s)"):
        assert expected in text
    with Session(rollbot.engine) as session:
        request = session.exec(select(ApprovalRequest)).one()
        assert (request.slack_channel, request.slack_ts) == (
            card.args["channel"],
            card.args.get("ts", request.slack_ts),
        )


def test_a_second_proposal_supersedes_the_first(rollbot: Rollbot) -> None:
    first = propose(rollbot)
    second = propose(rollbot, user="UBOB")

    with Session(rollbot.engine) as session:
        statuses = {r.id: r.status for r in session.exec(select(ApprovalRequest)).all()}
    assert statuses == {first: "cancelled", second: "pending"}
    assert rollbot.fake.wait_for(
        lambda: any("Cancelled" in str(c.args) for c in rollbot.fake.calls_to("chat.update"))
    )


def test_a_note_outside_an_incident_channel_is_refused(rollbot: Rollbot) -> None:
    reply = command(rollbot, "note restarted the job", user="UALICE", channel="CRANDOM")

    assert "this channel belongs to no incident" in reply
    assert _count(rollbot, TimelineEvent) == 0


def test_runbook_show_and_models(rollbot: Rollbot) -> None:
    shown = command(rollbot, f"runbook show {MODEL}", user="UALICE")
    assert "*Plan for `fraud-detector`* 5 → 4" in shown and "2. settle (`wait`)" in shown

    listed = command(rollbot, "models", user="UALICE")
    assert listed.startswith(f"• `{MODEL}` serving unknown · last safe unknown (local"), listed
    assert _count(rollbot, ApprovalRequest) == 0


def test_the_models_owners_are_invited_to_its_incident_channel(
    engine: Engine, fake_slack: FakeSlack
) -> None:
    fake_slack.state.usergroups["SOWNERS"] = ["UDANA", "UERIN"]
    config = rollbot_config()
    owned = config.models[MODEL].model_copy(update={"owners": ["UOWNER", "SOWNERS"]})
    config = config.model_copy(update={"models": {MODEL: owned}})
    client = WebClient(token="xoxb-test", base_url=fake_slack.api_url)
    surface = build_surface(engine, client, World(), config)
    with session_scope(engine) as session:
        incident, _ = incidents.open_or_join(
            session, model=MODEL, title="degraded", actor="rollbot", source="watch"
        )
        incident_id = incident.id
    assert incident_id is not None

    surface.notifier.incident_opened(incident_id=incident_id)

    [invite] = fake_slack.calls_to("conversations.invite")
    assert sorted(invite.args["users"].split(",")) == ["UDANA", "UERIN", "UOWNER"]
