"""`POST /slack/events`: hand every Slack request to the bolt App (signatures checked there).

The sync bolt App is dispatched in the thread pool, so a slow listener never blocks the
event loop that other requests (and other acks) are served from.
"""

from __future__ import annotations

from fastapi import FastAPI, Request, Response
from slack_bolt import App
from slack_bolt.adapter.starlette.handler import to_bolt_request, to_starlette_response
from starlette.concurrency import run_in_threadpool


def mount_slack(app: FastAPI, bolt: App) -> None:
    """Route Slack's events, commands and interactivity to ``bolt``."""

    @app.post("/slack/events")
    async def slack_events(request: Request) -> Response:
        body = await request.body()
        response = await run_in_threadpool(bolt.dispatch, to_bolt_request(request, body))
        return to_starlette_response(response)
