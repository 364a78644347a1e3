"""The work Slack listeners leave for after their ack, and the runner that does it.

Listeners store plain values in the inbox (``bot.slack.inbox``); a :class:`FollowUpRunner`
claims them with a lease, does the work (run a command, count a click, capture a message)
and marks it done. A runner whose process dies leaves its lease to run out, and any runner
then takes the work again; after ``MAX_ATTEMPTS`` the work is given up and the person told.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from slack_bolt.context.respond import Respond
from slack_sdk import WebClient

from bot.approvals.flows import click
from bot.errors import RollbotError
from bot.slack import incident_commands, rollback_commands
from bot.slack.capture import CapturedMessage, capture, read_message
from bot.slack.commands import Command, Usage, parse
from bot.slack.inbox import claim, finish
from bot.slack.surface import Caller, Reply, Surface
from bot.store.models import SlackInbox
from integrations.errors import IntegrationError

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 3
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


def run_command(surface: Surface, payload: dict[str, Any], respond: Respond) -> None:
    """`/rollbot …` after its ack: call the handler and reply at the response URL."""
    command = parse(payload["text"], models=frozenset(surface.config.models))
    if isinstance(command, Usage):  # the config changed since the ack; say so
        raise RollbotError(command.message)
    reply = HANDLERS[command.name](
        surface, command, Caller(user=payload["user"], channel=payload.get("channel"))
    )
    respond(
        text=reply.text,
        blocks=reply.blocks,
        response_type="in_channel" if reply.in_channel else "ephemeral",
    )


def decide(surface: Surface, payload: dict[str, Any], respond: Respond) -> None:
    """An Approve or Reject click: the policy decides, the card and headline follow."""
    outcome = click(
        surface.engine,
        tools=surface.tools,
        request_id=int(payload["request_id"]),
        user=payload["user"],
        decision=payload["decision"],
        members_of=surface.members_of,
    )
    if outcome.counted:
        surface.notifier.proposal_decided(request_id=outcome.request_id)
    if outcome.run_id is not None:
        surface.notifier.run_progress(
            run_id=outcome.run_id, message=f"Run #{outcome.run_id} queued: {outcome.message}"
        )
    respond(text=outcome.message, response_type="ephemeral", replace_original=False)


def add_to_timeline(surface: Surface, payload: dict[str, Any], respond: Respond) -> None:
    """The "Add to timeline" shortcut: copy the message into the channel's incident."""
    message = CapturedMessage.from_slack(payload["channel"], payload["message"])
    incident_id = capture(surface, message=message, captured_by=payload["user"], via="shortcut")
    if incident_id is None:
        raise RollbotError("this channel belongs to no incident, so there is no timeline here")
    respond(text=f"Added to the timeline of incident #{incident_id}.", response_type="ephemeral")


def pin(surface: Surface, payload: dict[str, Any], client: WebClient) -> None:
    """The pin reaction: fetch the reacted-to message and copy it into the timeline."""
    channel, ts = payload["channel"], payload["ts"]
    raw = read_message(client, channel=channel, ts=ts)
    if raw is None:
        log.warning("pinned message %s in %s is not in its channel or a thread", ts, channel)
        raise RollbotError(
            "could not find the message you pinned (deleted?), so nothing was added to the timeline"
        )
    message = CapturedMessage.from_slack(channel, raw)
    capture(surface, message=message, captured_by=payload["user"], via="reaction")


class FollowUpRunner:
    """Claims pending follow-ups and does them on a few threads; `wake` after an admission."""

    def __init__(
        self,
        surface: Surface,
        client: WebClient,
        *,
        threads: int = 4,
        lease: timedelta = timedelta(seconds=60),
        poll_seconds: float = 1.0,
    ) -> None:
        self._surface = surface
        self._client = client
        self._threads = threads
        self._lease = lease
        self._poll = poll_seconds
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="slack-follow-up")

    def wake(self) -> None:
        """New work was admitted: look now rather than at the next poll."""
        self._wake.set()

    def run_pending(self) -> int:
        """Do every follow-up that can be claimed now; how many were done."""
        done = 0
        while batch := claim(self._surface.engine, limit=self._threads * 2, lease=self._lease):
            list(self._pool.map(self.perform, batch))
            done += len(batch)
        return done

    def start(self) -> threading.Thread:
        """Run in a background thread until `stop`."""
        thread = threading.Thread(target=self._run_forever, name="slack-follow-ups", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        """Finish the current batch and stop."""
        self._stop.set()
        self._wake.set()

    def _run_forever(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                self.run_pending()
            except Exception as error:  # the database is down: say so, keep trying
                log.warning("slack follow-ups: could not claim work (%s); retrying", error)
            self._wake.wait(self._poll)

    def perform(self, row: SlackInbox) -> None:
        """Do one follow-up; its failure becomes an ephemeral reply, never a retry loop."""
        payload = row.payload
        respond = Respond(response_url=payload.get("response_url") or None)
        try:
            if row.attempts > MAX_ATTEMPTS:
                raise RollbotError("that request was tried several times and given up on")
            self._do(row.kind or "", payload, respond)
        except Exception as error:
            reply_with_error(error, payload, respond, self._client)
            finish(self._surface.engine, key=row.key, error=str(error)[:1000])
            return
        finish(self._surface.engine, key=row.key)

    def _do(self, kind: str, payload: dict[str, Any], respond: Respond) -> None:
        if kind == "command":
            run_command(self._surface, payload, respond)
        elif kind == "decision":
            decide(self._surface, payload, respond)
        elif kind == "add_to_timeline":
            add_to_timeline(self._surface, payload, respond)
        elif kind == "pin":
            pin(self._surface, payload, self._client)
        else:
            raise RollbotError(f"unknown follow-up {kind!r}")


def user_message(error: Exception) -> str:
    """What to tell the person: the domain's own words, never a traceback."""
    if isinstance(error, RollbotError | IntegrationError | ValueError):
        return str(error)[:500]
    log.error("slack follow-up failed", exc_info=error)
    return "Something went wrong handling that; it has been logged."


def reply_with_error(
    error: Exception, payload: dict[str, Any], respond: Respond, client: WebClient
) -> None:
    """Tell the person what went wrong: at the response URL, else as an ephemeral message."""
    text = f":warning: {user_message(error)}"
    try:
        if respond.response_url:
            respond(text=text, response_type="ephemeral", replace_original=False)
        elif payload.get("user") and payload.get("channel"):
            client.chat_postEphemeral(channel=payload["channel"], user=payload["user"], text=text)
    except Exception:
        log.warning("could not tell %s about a failed follow-up", payload.get("user"))
