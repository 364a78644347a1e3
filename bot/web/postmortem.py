"""The postmortem page: ``GET /incidents/{id}/postmortem``, its chart, and key-time corrections."""

from __future__ import annotations

import hmac
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse
from sqlalchemy.engine import Engine
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from bot.config import RollbotConfig, Settings, load_config
from bot.errors import NotFoundError
from bot.postmortem.flows import build_facts, chart_png, correct_key_time, render_document
from bot.web.access import carries

router = APIRouter()


@router.get("/incidents/{incident_id}/postmortem", response_class=HTMLResponse)
async def postmortem_page(incident_id: int, request: Request) -> Response:
    """The postmortem draft as a web page, with the chart and a form to correct key times."""
    refusal = _reader_refusal(request)
    if refusal is not None:
        return refusal
    state = request.app.state
    try:
        page = await run_in_threadpool(_page, state.engine, incident_id, _config(state), state)
    except NotFoundError as exc:
        return PlainTextResponse(str(exc), status_code=404)
    return HTMLResponse(page)


@router.get("/incidents/{incident_id}/postmortem/chart.png")
async def postmortem_chart(incident_id: int, request: Request) -> Response:
    """The chart of the watched metrics around the incident."""
    refusal = _reader_refusal(request)
    if refusal is not None:
        return refusal
    state = request.app.state
    try:
        png = await run_in_threadpool(_chart, state.engine, incident_id, _config(state), state)
    except NotFoundError as exc:
        return PlainTextResponse(str(exc), status_code=404)
    return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})


@router.post("/incidents/{incident_id}/postmortem/key-times")
async def correct_time(incident_id: int, request: Request) -> Response:
    """Correct one key time from the page's form; 400 says what is wrong and changes nothing."""
    form = {k: v[0] for k, v in parse_qs((await request.body()).decode("utf-8", "replace")).items()}
    refusal = _token_refusal(form.get("token", ""))
    if refusal:
        return PlainTextResponse(f"key time not corrected: {refusal}", status_code=403)
    try:
        await run_in_threadpool(_correct, request.app.state.engine, incident_id, form)
    except NotFoundError as exc:
        return PlainTextResponse(str(exc), status_code=404)
    except ValueError as exc:
        return PlainTextResponse(f"key time not corrected: {exc}", status_code=400)
    return RedirectResponse(f"/incidents/{incident_id}/postmortem", status_code=303)


def _reader_refusal(request: Request) -> Response | None:
    """401 when ROLLBOT_WEB_TOKEN is set and the request does not carry it; None to go on.

    A browser asks for it (HTTP Basic: any user name, the token as the password); scripts
    may send ``Authorization: Bearer TOKEN``. Without a token set the pages are open, and
    ``rollbot web`` warns of that when it starts.
    """
    expected = Settings().rollbot_web_token
    if not expected or carries(request, expected):
        return None
    return PlainTextResponse(
        "this incident page needs the access token: give ROLLBOT_WEB_TOKEN as the password",
        status_code=401,
        headers={"WWW-Authenticate": 'Basic realm="Rollbot incidents", charset="UTF-8"'},
    )


def _token_refusal(given: str) -> str | None:
    """Why a correction from the page is not allowed, or None.

    The web app also serves Slack and Alertmanager, often on a public address; changing an
    incident's record from it needs the shared token an operator set.
    """
    expected = Settings().rollbot_web_token
    if not expected:
        return (
            "corrections from the page are off; set ROLLBOT_WEB_TOKEN to allow them, or use "
            "`rollbot postmortem INCIDENT --set KEY=TIME`"
        )
    if not hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8")):
        return "wrong access token"
    return None


def _page(engine: Engine, incident_id: int, config: RollbotConfig, state: Any) -> str:
    with Session(engine) as session:
        facts = build_facts(
            session, incident_id=incident_id, config=config, metrics=_metrics(state)
        )
    return render_document(
        facts,
        format="html",
        config=config,
        chart_src=f"/incidents/{incident_id}/postmortem/chart.png",
        correction_url=f"/incidents/{incident_id}/postmortem/key-times",
    )


def _chart(engine: Engine, incident_id: int, config: RollbotConfig, state: Any) -> bytes:
    with Session(engine) as session:
        facts = build_facts(
            session, incident_id=incident_id, config=config, metrics=_metrics(state)
        )
    return chart_png(facts)


def _correct(engine: Engine, incident_id: int, form: dict[str, str]) -> None:
    missing = [field for field in ("key", "at", "actor") if not form.get(field, "").strip()]
    if missing:
        raise ValueError(f"fill in {', '.join(missing)}")
    with Session(engine) as session:
        correct_key_time(
            session,
            incident_id=incident_id,
            key=form["key"],
            at=form["at"],
            actor=form["actor"],
            source="web",
            reason=form.get("reason"),
        )
        session.commit()


def _config(state: Any) -> RollbotConfig:
    """The app's configuration; loaded once from ROLLBOT_CONFIG when the app was given none."""
    config: RollbotConfig | None = getattr(state, "config", None)
    if config is None:
        config = load_config(Settings().rollbot_config)
        state.config = config
    return config


def _metrics(state: Any) -> Any:
    # The metrics source the app was wired with, if any; the page works without one.
    return getattr(state, "metrics", None)
