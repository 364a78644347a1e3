"""``POST /alerts/alertmanager``: the Alertmanager webhook receiver (payload version 4)."""

from __future__ import annotations

import functools
import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from bot.alerts.flows import receive_notification
from bot.alerts.payload import PayloadError, parse_payload
from bot.config import RollbotConfig, Settings, load_config
from bot.web.access import carries

router = APIRouter()

# The largest notification read. 10,000 alerts with their labels and annotations take about
# 10 MB; a larger group is better cut by the receiver's ``max_alerts`` than read whole.
MAX_BODY_BYTES = 32 * 1024 * 1024


@router.post("/alerts/alertmanager")
async def alertmanager_webhook(request: Request) -> JSONResponse:
    """Validate, then store the whole batch in one transaction; 400 names the bad field.

    With ROLLBOT_ALERTMANAGER_TOKEN set, a notification must carry it (Alertmanager's
    ``http_config``: ``authorization`` or ``basic_auth``), else 401 and nothing is read.
    """
    expected = _token(request.app.state)
    if expected and not carries(request, expected):
        return JSONResponse(
            {
                "error": "this endpoint needs ROLLBOT_ALERTMANAGER_TOKEN, as a Bearer token or "
                "the basic_auth password of the webhook receiver",
                "field": None,
            },
            status_code=401,
            headers={"WWW-Authenticate": 'Bearer realm="Rollbot alerts"'},
        )
    state = request.app.state
    config = _config(state)
    body = await _body(request)
    if body is None:
        return JSONResponse(
            {
                "error": f"the notification is larger than {MAX_BODY_BYTES // 2**20} MiB; set "
                "max_alerts on the webhook receiver to send fewer alerts per notification",
                "field": None,
            },
            status_code=413,
        )
    try:
        payload = parse_payload(_json(body), model_label=config.alertmanager.model_label)
    except PayloadError as exc:
        return JSONResponse({"error": exc.reason, "field": exc.field}, status_code=400)
    result = await run_in_threadpool(
        receive_notification,
        state.engine,
        payload=payload,
        config=config,
        proposer=_proposer(state),
        notifier=getattr(state, "notifier", None),
    )
    return JSONResponse({"status": "ok", **result.counts()})


async def _body(request: Request) -> bytes | None:
    """The request body, or None as soon as it is known to exceed ``MAX_BODY_BYTES``."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PayloadError(f"the body is not valid JSON ({exc})", field=None) from None


def _token(state: Any) -> str | None:
    """ROLLBOT_ALERTMANAGER_TOKEN, read once per app rather than at every notification."""
    if not hasattr(state, "alertmanager_token"):
        state.alertmanager_token = Settings().rollbot_alertmanager_token
    token: str | None = state.alertmanager_token
    return token


def _config(state: Any) -> RollbotConfig:
    """The app's configuration; loaded once from ROLLBOT_CONFIG when the app was given none."""
    config: RollbotConfig | None = getattr(state, "config", None)
    if config is None:
        config = load_config(Settings().rollbot_config)
        state.config = config
    return config


def _proposer(state: Any) -> Any:
    """The app's rollback proposer; built from the configuration when proposals are on."""
    proposer = getattr(state, "rollback_proposer", None)
    config = _config(state)
    if proposer is None and config.alertmanager.propose_rollback:
        from bot.proposals import default_tools, propose_with

        proposer = functools.partial(propose_with, tools=default_tools(config, Settings()))
        state.rollback_proposer = proposer
    return proposer
