"""`POST /slack/events`: bolt checks and acks, the inbox refuses replays and keeps the work.

Dispatch runs on the event loop itself: with listeners that only parse and ack it takes a
fraction of a millisecond and does no I/O, and a hop to the thread pool would cost more than
that under load (threads fighting over the GIL). The only I/O before the response is the
inbox insert, batched with concurrent requests by a single writer thread. A plain Starlette
route, rather than a FastAPI one, because there is nothing for FastAPI to validate here.
"""

from __future__ import annotations

from fastapi import FastAPI, Request, Response
from slack_bolt import App
from slack_bolt.adapter.starlette.handler import to_bolt_request, to_starlette_response

from bot.slack.app import RollbotSlackApp, follow_up_of
from bot.slack.inbox import Admission


def mount_slack(app: FastAPI, bolt: App) -> None:
    """Route Slack's events, commands and interactivity to ``bolt``."""
    if not isinstance(bolt, RollbotSlackApp):
        raise TypeError("mount_slack needs the App from bot.slack.app.create_slack_app")
    admission = bolt.admission

    async def slack_events(request: Request) -> Response:
        body = await request.body()
        bolt_request = to_bolt_request(request, body)
        response = bolt.dispatch(bolt_request)
        # Only a request bolt accepted (signature and timestamp checked) is worth a key.
        signature = (bolt_request.headers.get("x-slack-signature") or [""])[0]
        if response.status == 200 and signature:
            first_time = await admission.admit(Admission(signature, follow_up_of(bolt_request)))
            if not first_time:
                return Response('{"error":"replayed request"}', 401, media_type="application/json")
        return to_starlette_response(response)

    app.router.add_route("/slack/events", slack_events, methods=["POST"])
