"""The FastAPI application."""

from __future__ import annotations

import gc

from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from slack_bolt import App
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from bot import __version__
from bot.store import migrate
from bot.web.alerts import router as alerts_router
from bot.web.postmortem import router as postmortem_router
from bot.web.request_metrics import RequestMetrics
from bot.web.slack import mount_slack


def create_app(engine: Engine, *, slack_app: App | None = None) -> FastAPI:
    """The web app over one database engine; with ``slack_app``, also POST /slack/events."""
    app = FastAPI(title="Rollbot", version=__version__, docs_url=None, redoc_url=None)
    app.state.engine = engine
    app.include_router(alerts_router)
    app.include_router(postmortem_router)
    if slack_app is not None:
        mount_slack(app, slack_app)
    else:

        @app.post("/slack/events")
        def slack_off() -> JSONResponse:
            # Say why, rather than 404: a Slack app pointed here needs to know what is missing.
            return JSONResponse(
                {
                    "error": "this process takes no Slack requests over HTTP: set "
                    "SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET (without SLACK_APP_TOKEN, which "
                    "selects Socket Mode)"
                },
                status_code=503,
            )

    app.add_middleware(RequestMetrics)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        problem = await run_in_threadpool(readiness_problem, engine)
        if problem:
            return JSONResponse({"status": "unavailable", "reason": problem}, status_code=503)
        return JSONResponse({"status": "ready"})

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app


def freeze_startup_heap() -> None:
    """Take the objects built at start-up out of the garbage collector's sight.

    Collections that walked them were the slowest Slack acks under a burst (over 100 ms);
    call once, after the app is built and before serving.
    """
    gc.collect()
    gc.freeze()


def readiness_problem(engine: Engine) -> str | None:
    """Why the app cannot serve yet (database down, migrations behind), or None."""
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        current = migrate.current_revision(engine)
    except SQLAlchemyError as exc:
        return f"database unreachable: {type(exc).__name__}"
    head = migrate.head_revision()
    if current != head:
        return (
            f"database at migration {current or 'none'}, expected {head}: run `rollbot db upgrade`"
        )
    return None
