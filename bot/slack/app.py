"""The bolt App: listeners that parse, ack, and leave their work in the inbox.

The ack path does nothing slow: bolt checks the signature, a listener parses the payload into
plain values and acks (answering help and usage errors in the ack itself), and the work it
leaves (``FollowUp``) is stored with the request's replay key in one insert. A
``FollowUpRunner`` does the work afterwards, in this process or any other sharing the
database, and replies at the response URL. Errors in that work become short ephemeral
messages (``bot.slack.follow_ups.reply_with_error``); errors before the ack reach the one
``@app.error`` handler.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, App, Args, BoltRequest
from slack_bolt.error import BoltError
from slack_sdk import WebClient
from slack_sdk.signature import SignatureVerifier

from bot.errors import ConfigError, RollbotError
from bot.slack.commands import Usage, parse, usage_text
from bot.slack.follow_ups import FollowUpRunner, user_message
from bot.slack.ids import ActionId, CallbackId
from bot.slack.inbox import Admission, BatchedAdmission, FollowUp, admit
from bot.slack.surface import Surface

log = logging.getLogger(__name__)
FOLLOW_UP = "rollbot_follow_up"  # where a listener leaves its work in the bolt context


class RollbotSlackApp(App):
    """The bolt App plus the inbox its endpoint admits requests to and the follow-up runner."""

    admission: BatchedAdmission
    follow_ups: FollowUpRunner
    # Checks a request's signature on its raw body, before anything parses it.
    verifier: SignatureVerifier | None = None

    def close(self) -> None:
        """Stop the follow-up runner of this process."""
        self.follow_ups.stop()


def create_slack_app(
    surface: Surface,
    *,
    client: WebClient,
    signing_secret: str | None,
    socket_mode: bool = False,
    run_follow_ups: bool = True,
) -> RollbotSlackApp:
    """The bolt App with every Rollbot listener registered.

    With ``run_follow_ups`` this process also does the work the listeners leave; without it,
    another process's runner (the worker) does.
    """
    try:
        # Bolt checks the token with Slack (auth.test) here.
        app = RollbotSlackApp(
            client=client,
            signing_secret=signing_secret or "",
            # The endpoint checks the signature on the raw body before bolt sees it
            # (``verifier`` below, bot/web/slack.py); Socket Mode needs none.
            request_verification_enabled=False,
            # Listeners only parse and ack, so running them before the response costs nothing
            # and spares bolt's ack polling and a thread hop.
            process_before_response=True,
        )
    except BoltError as exc:
        raise ConfigError(
            f"Slack at {client.base_url} refused the bot token ({exc}); check SLACK_BOT_TOKEN"
        ) from None
    except OSError as exc:
        raise RollbotError(
            f"cannot reach Slack at {client.base_url} to check the bot token "
            f"({getattr(exc, 'reason', exc)}); set SLACK_API_URL if Slack's Web API is elsewhere"
        ) from None
    app.verifier = None if socket_mode else SignatureVerifier(signing_secret or "")
    app.follow_ups = FollowUpRunner(surface, client)
    if run_follow_ups:
        app.follow_ups.start()
    app.admission = BatchedAdmission(surface.engine, admitted=app.follow_ups.wake)
    leave = Leave(surface, app.follow_ups)
    _register_command(app, surface, leave)
    _register_decisions(app, leave)
    _register_capture(app, surface, leave)
    app.error(_reply_with_error)
    return app


def follow_up_of(request: BoltRequest) -> FollowUp | None:
    """The work the listener left for after the ack, if any."""
    follow_up = request.context.get(FOLLOW_UP)
    return follow_up if isinstance(follow_up, FollowUp) else None


class Leave:
    """How a listener leaves work: over HTTP in the bolt context, for the endpoint to admit
    together with the replay check; over Socket Mode (an authenticated socket, nothing to
    replay) stored at once under a fresh key.
    """

    def __init__(self, surface: Surface, runner: FollowUpRunner) -> None:
        self._engine = surface.engine
        self._runner = runner

    def __call__(self, args: Args, kind: str, **payload: Any) -> None:
        """Leave ``kind`` work with its plain-value ``payload``."""
        follow_up = FollowUp(kind, payload)
        if args.request.mode != "socket_mode":
            args.context[FOLLOW_UP] = follow_up
            return
        admit(self._engine, [Admission(f"socket:{uuid.uuid4().hex}", follow_up)])
        self._runner.wake()


def _register_command(app: App, surface: Surface, leave: Leave) -> None:
    @app.command(surface.command)
    def rollbot_command(ack: Ack, args: Args) -> None:
        command = args.command or {}
        text = command.get("text", "")
        parsed = parse(text, models=frozenset(surface.config.models))
        if not command.get("user_id"):
            ack(response_type="ephemeral", text="Rollbot cannot tell who sent this command.")
        elif isinstance(parsed, Usage):
            ack(response_type="ephemeral", text=parsed.message)
        elif parsed.name == "help":
            ack(response_type="ephemeral", text=usage_text(surface.command))
        else:
            ack()
            leave(
                args,
                "command",
                text=text,
                user=command["user_id"],
                channel=command.get("channel_id"),
                response_url=command.get("response_url"),
            )


def _register_decisions(app: App, leave: Leave) -> None:
    def decision_listener(decision: str) -> Callable[[Ack, Args], None]:
        def on_click(ack: Ack, args: Args) -> None:
            ack()
            body = args.body
            try:
                request_id, user = int(body["actions"][0]["value"]), str(body["user"]["id"])
            except (KeyError, IndexError, TypeError, ValueError):
                log.warning("ignored a %s click without a request id and a user", decision)
                return
            leave(
                args,
                "decision",
                request_id=request_id,
                user=user,
                decision=decision,
                response_url=body.get("response_url"),
            )

        return on_click

    app.action(ActionId.APPROVE)(decision_listener("approve"))
    app.action(ActionId.REJECT)(decision_listener("reject"))

    # Any other button (an old card's, say) is acknowledged, so Slack shows no error.
    @app.action(re.compile(r".*"))
    def other_action(ack: Ack) -> None:
        ack()


def _register_capture(app: App, surface: Surface, leave: Leave) -> None:
    @app.shortcut(CallbackId.ADD_TO_TIMELINE)
    def add_to_timeline(ack: Ack, args: Args) -> None:
        ack()
        body = args.body
        try:
            message, channel, user = body["message"], body["channel"]["id"], body["user"]["id"]
            fields = {key: message.get(key) for key in ("ts", "user", "bot_id", "text")}
        except (KeyError, TypeError, AttributeError):
            log.warning("ignored an add-to-timeline shortcut without a message, channel or user")
            return
        leave(
            args,
            "add_to_timeline",
            channel=channel,
            message=fields,
            user=user,
            response_url=body.get("response_url"),
        )

    @app.event("reaction_added")
    def pin_reaction(args: Args) -> None:
        event = args.event or {}
        item = event.get("item", {})
        if (
            event.get("reaction") == surface.config.slack.pin_reaction
            and item.get("type") == "message"
            and item.get("channel")
            and item.get("ts")
        ):
            leave(args, "pin", channel=item["channel"], ts=item["ts"], user=event.get("user"))


def _reply_with_error(error: Exception, body: dict[str, Any], client: WebClient) -> None:
    """Errors before the ack: a short ephemeral message where the person is."""
    user = (
        body.get("user_id")
        or (body.get("user") or {}).get("id")
        or body.get("event", {}).get("user")
    )
    channel = body.get("channel_id") or (body.get("channel") or {}).get("id")
    if user and channel:
        client.chat_postEphemeral(
            channel=channel, user=user, text=f":warning: {user_message(error)}"
        )
