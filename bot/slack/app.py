"""The bolt App: listeners that ack at once, parse, call one domain function and reply.

Listeners call ``ack()`` first and then do their work in bolt's listener thread
(``process_before_response=False``): Slack gets its acknowledgement within milliseconds
while plan rendering or channel creation carries on. Errors raised after the ack reach the
single ``@app.error`` handler, which replies with a short ephemeral message. Approved runs
are not executed here: the worker's runbook job picks up pending runs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from slack_bolt import App, Args, Respond
from slack_sdk import WebClient

from bot.approvals.flows import click
from bot.approvals.service import Decision
from bot.errors import RollbotError
from bot.slack import incident_commands, rollback_commands
from bot.slack.capture import CapturedMessage, capture
from bot.slack.commands import Command, Usage, parse, usage_text
from bot.slack.ids import ActionId, CallbackId
from bot.slack.replay import ReplayGuard
from bot.slack.surface import Caller, Reply, Surface
from integrations.errors import IntegrationError

log = logging.getLogger(__name__)
Handler = Callable[[Surface, Command, Caller], Reply]
HANDLERS: dict[str, Handler] = {
    "incident declare": incident_commands.declare,
    "incident list": incident_commands.list_open,
    "incident status": incident_commands.status,
    "incident resolve": incident_commands.resolve,
    "incident sev": incident_commands.severity,
    "note": incident_commands.note,
    "models": incident_commands.models,
    "postmortem": incident_commands.postmortem,
    "rollback": rollback_commands.rollback,
    "runbook run": rollback_commands.rollback,
    "runbook list": rollback_commands.list_runbooks,
    "runbook show": rollback_commands.show,
    "runbook abort": rollback_commands.abort,
    "runbook status": rollback_commands.status,
}


def create_slack_app(
    surface: Surface,
    *,
    client: WebClient,
    signing_secret: str | None,
    socket_mode: bool = False,
    workers: int = 8,
) -> App:
    """The bolt App with every Rollbot listener registered."""
    app = App(
        client=client,
        token=client.token,
        signing_secret=signing_secret or "",
        request_verification_enabled=not socket_mode,
        # Listeners only ack and hand their work to `Later`, so running them before the
        # response costs nothing and saves bolt's ack polling (10 ms steps) and a thread hop.
        process_before_response=True,
    )
    app.middleware(ReplayGuard().as_middleware())
    later = Later(workers)
    _register_command(app, surface, later)
    _register_decisions(app, surface, later)
    _register_capture(app, surface, later)
    app.error(_reply_with_error)
    return app


class Later:
    """Runs a listener's work after its ack, on a pool of its own, and reports its errors.

    Acks then never queue behind slow work (plan rendering, channel creation). It also
    sidesteps a race in bolt's thread runner, which resets an ack when the listener raises
    soon after it, turning the ack into a 404.
    """

    def __init__(self, workers: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="slack-work")

    def __call__(self, args: Args, work: Callable[[], None]) -> None:
        """Submit ``work``; its failure becomes an ephemeral reply to ``args``' user."""

        def run() -> None:
            try:
                work()
            except Exception as error:
                _reply_with_error(error, args.body, args.respond, args.client)

        self._pool.submit(run)


def _register_command(app: App, surface: Surface, later: Later) -> None:
    @app.command(surface.command)
    def rollbot_command(args: Args) -> None:
        command = args.command or {}
        parsed = parse(command.get("text", ""), models=frozenset(surface.config.models))
        if isinstance(parsed, Usage):
            args.ack(response_type="ephemeral", text=parsed.message)
        elif parsed.name == "help":
            args.ack(response_type="ephemeral", text=usage_text(surface.command))
        else:
            args.ack()
            caller = Caller(user=command["user_id"], channel=command.get("channel_id"))
            later(args, lambda: _run_command(surface, parsed, caller, args.respond))


def _run_command(surface: Surface, command: Command, caller: Caller, respond: Respond) -> None:
    reply = HANDLERS[command.name](surface, command, caller)
    respond(
        text=reply.text,
        blocks=reply.blocks,
        response_type="in_channel" if reply.in_channel else "ephemeral",
    )


def _register_decisions(app: App, surface: Surface, later: Later) -> None:
    def decide(body: dict[str, Any], respond: Respond, decision: Decision) -> None:
        outcome = click(
            surface.engine,
            tools=surface.tools,
            request_id=int(body["actions"][0]["value"]),
            user=body["user"]["id"],
            decision=decision,
            members_of=surface.members_of,
        )
        if outcome.counted:
            surface.notifier.proposal_decided(request_id=outcome.request_id)
        if outcome.run_id is not None:
            surface.notifier.run_progress(
                run_id=outcome.run_id, message=f"Run #{outcome.run_id} queued: {outcome.message}"
            )
        respond(text=outcome.message, response_type="ephemeral", replace_original=False)

    @app.action(ActionId.APPROVE)
    def approve(args: Args) -> None:
        args.ack()
        later(args, lambda: decide(args.body, args.respond, "approve"))

    @app.action(ActionId.REJECT)
    def reject(args: Args) -> None:
        args.ack()
        later(args, lambda: decide(args.body, args.respond, "reject"))


def _register_capture(app: App, surface: Surface, later: Later) -> None:
    def add(body: dict[str, Any], respond: Respond) -> None:
        message = CapturedMessage.from_slack(body["channel"]["id"], body["message"])
        incident_id = capture(
            surface, message=message, captured_by=body["user"]["id"], via="shortcut"
        )
        if incident_id is None:
            raise RollbotError("this channel belongs to no incident, so there is no timeline here")
        respond(
            text=f"Added to the timeline of incident #{incident_id}.", response_type="ephemeral"
        )

    def pin(event: dict[str, Any], client: WebClient) -> None:
        item = event.get("item", {})
        found = client.conversations_history(
            channel=item["channel"], latest=item["ts"], inclusive=True, limit=1
        )
        for raw in found.get("messages") or []:
            message = CapturedMessage.from_slack(item["channel"], raw)
            capture(surface, message=message, captured_by=event["user"], via="reaction")

    @app.shortcut(CallbackId.ADD_TO_TIMELINE)
    def add_to_timeline(args: Args) -> None:
        args.ack()
        later(args, lambda: add(args.body, args.respond))

    @app.event("reaction_added")
    def pin_reaction(args: Args) -> None:
        event = args.event or {}
        pinned = event.get("reaction") == surface.config.slack.pin_reaction
        if pinned and event.get("item", {}).get("type") == "message":
            later(args, lambda: pin(event, args.client))


def user_message(error: Exception) -> str:
    """What to tell the person: the domain's own words, never a traceback."""
    if isinstance(error, RollbotError | IntegrationError | ValueError):
        return str(error)[:500]
    log.error("slack listener failed", exc_info=error)
    return "Something went wrong handling that; it has been logged."


def _reply_with_error(
    error: Exception, body: dict[str, Any], respond: Respond | None, client: WebClient
) -> None:
    text = f":warning: {user_message(error)}"
    if respond is not None:
        respond(text=text, response_type="ephemeral", replace_original=False)
        return
    user = (
        body.get("user_id")
        or (body.get("user") or {}).get("id")
        or body.get("event", {}).get("user")
    )
    channel = body.get("channel_id") or (body.get("channel") or {}).get("id")
    if user and channel:
        client.chat_postEphemeral(channel=channel, user=user, text=text)
