"""`POST /slack/events`: bolt checks and acks, the inbox refuses replays and keeps the work.

Dispatch runs on the event loop itself: with listeners that only parse and ack it takes a
fraction of a millisecond and does no I/O, and a hop to the thread pool would cost more than
that under load (threads fighting over the GIL). The only I/O before the response is the
inbox insert, batched with concurrent requests by a single writer thread. A plain Starlette
route, rather than a FastAPI one, because there is nothing for FastAPI to validate here.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from fastapi import FastAPI, Request, Response
from slack_bolt import App
from slack_bolt.adapter.starlette.handler import to_bolt_request, to_starlette_response
from slack_sdk.signature import SignatureVerifier

from bot.slack.app import RollbotSlackApp, follow_up_of
from bot.slack.inbox import Admission

# What bolt raises when it reads a body or payload of the wrong shape (its listeners' own
# errors go to the app's error handler instead).
_UNREADABLE = (ValueError, TypeError, AttributeError, KeyError, IndexError)


def mount_slack(app: FastAPI, bolt: App) -> None:
    """Route Slack's events, commands and interactivity to ``bolt``."""
    if not isinstance(bolt, RollbotSlackApp):
        raise TypeError("mount_slack needs the App from bot.slack.app.create_slack_app")
    verifier = bolt.verifier
    if verifier is None:  # bolt checks no signatures itself: this route must
        raise TypeError("a Socket Mode app cannot serve /slack/events (it checks no signatures)")
    admission = bolt.admission

    async def slack_events(request: Request) -> Response:
        body = await request.body()
        timestamp = request.headers.get("x-slack-request-timestamp")
        signature = request.headers.get("x-slack-signature", "")
        # Forged or stale requests are refused before anything reads their body.
        if not _signed(verifier, body, timestamp, signature):
            return _error("invalid or stale signature", 401)
        try:
            bolt_request = to_bolt_request(request, body)
            response = bolt.dispatch(bolt_request)
        except _UNREADABLE as exc:  # signed, but not shaped as Slack shapes its payloads
            return _error(f"unreadable request ({type(exc).__name__})", 400)
        # Only a request signed and accepted is worth a key.
        if response.status == 200 and signature:
            sent_at = _sent_at(timestamp)
            admitted = Admission(signature, follow_up_of(bolt_request), sent_at=sent_at)
            if not await admission.admit(admitted):
                return _error("replayed request", 401)
        return to_starlette_response(response)

    app.router.add_route("/slack/events", slack_events, methods=["POST"])


def _signed(
    verifier: SignatureVerifier, body: bytes, timestamp: str | None, signature: str
) -> bool:
    try:
        return verifier.is_valid(body, timestamp, signature)
    except ValueError:  # a timestamp that is not a number
        return False


def _error(reason: str, status: int) -> Response:
    return Response(json.dumps({"error": reason}), status, media_type="application/json")


def _sent_at(timestamp: str | None) -> datetime | None:
    """When Slack signed the request; its signature stays valid for five minutes after."""
    try:
        return datetime.fromtimestamp(int(timestamp or ""), UTC)
    except (ValueError, OverflowError, OSError):
        return None
