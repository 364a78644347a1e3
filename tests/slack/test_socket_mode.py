"""Socket Mode: the real slack_sdk client connects, takes a command and acks it."""

from __future__ import annotations

from urllib.parse import parse_qsl

from slack_sdk import WebClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot.slack.app import create_slack_app
from bot.slack.runtime import connect_socket_mode
from bot.store.models import Incident
from tests.slack.conftest import World, build_surface, rollbot_config
from tests.support.fake_slack import FakeSlack
from tests.support.slack_signing import slash_command


def test_a_command_over_socket_mode_is_acked_and_handled(
    engine: Engine, fake_slack: FakeSlack
) -> None:
    client = WebClient(token="xoxb-test", base_url=fake_slack.api_url)
    surface = build_surface(engine, client, World(), rollbot_config())
    app = create_slack_app(surface, client=client, signing_secret=None, socket_mode=True)
    handler = connect_socket_mode(app, "xapp-test")
    body, _ = slash_command(
        "incident declare socket scores drifted",
        user="UALICE",
        response_url=fake_slack.response_url("socket"),
    )
    try:
        fake_slack.socket_mode.send(
            {
                "envelope_id": "env-1",
                "type": "slash_commands",
                "accepts_response_payload": True,
                "payload": dict(parse_qsl(body)),
            }
        )

        ack = fake_slack.socket_mode.ack_for("env-1")
        reply = fake_slack.reply_to("socket")
    finally:
        handler.close()
        app.close()

    assert fake_slack.calls_to("apps.connections.open")[0].token == "xapp-test"
    assert "payload" not in ack  # an empty ack: the reply comes at the response URL
    assert reply.startswith("Declared incident #1: socket scores drifted")
    with Session(engine) as session:
        (incident,) = session.exec(select(Incident)).all()
    assert (
        incident.channel_id
        == fake_slack.state.channels[fake_slack.calls_to("conversations.create")[0].args["name"]]
    )


def test_a_usage_error_over_socket_mode_is_answered_in_the_ack(
    engine: Engine, fake_slack: FakeSlack
) -> None:
    client = WebClient(token="xoxb-test", base_url=fake_slack.api_url)
    surface = build_surface(engine, client, World(), rollbot_config())
    app = create_slack_app(surface, client=client, signing_secret=None, socket_mode=True)
    handler = connect_socket_mode(app, "xapp-test")
    body, _ = slash_command("frobnicate", user="UALICE")
    try:
        fake_slack.socket_mode.send(
            {"envelope_id": "env-2", "type": "slash_commands", "payload": dict(parse_qsl(body))}
        )
        ack = fake_slack.socket_mode.ack_for("env-2")
    finally:
        handler.close()
        app.close()

    assert "Unknown command `frobnicate`" in ack["payload"]["text"]
    with Session(engine) as session:
        assert session.exec(select(Incident)).all() == []
