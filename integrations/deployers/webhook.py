"""HTTP webhook deployer: hands the traffic shift to a system of the user's own.

The contract a receiver implements:

``POST <url>`` with a JSON body::

    {"action": "shift_traffic", "model": "fraud", "target": "fraud-prod", "version": "7",
     "source": "s3://models/fraud/7", "percent": 25, "idempotency_key": "run-12:step-3"}

and the headers ``Idempotency-Key`` (same as in the body; a receiver must apply a key at most
once and answer a repeat with success), ``X-Rollbot-Timestamp`` (Unix seconds) and, when a
secret is configured, ``X-Rollbot-Signature: sha256=<hex HMAC-SHA256>`` computed over
``"<timestamp>." + raw body``.
Signing the timestamp with the body lets a receiver refuse replays: reject requests whose
timestamp is more than five minutes old (``verify_signature`` does both checks).
Answer 2xx when the shift is applied or accepted; a JSON body in the state shape below is
taken as the new state, otherwise Rollbot reads the state with a GET. 409, 429 and 5xx are
retried later; other 4xx answers fail the step.

``GET <url>?target=fraud-prod`` answers the state::

    {"version": "6", "canary_version": "7", "canary_percent": 25, "ready": true,
     "message": "optional text"}

``version`` serves ``100 - canary_percent`` percent, ``canary_version`` (or null) the rest.

Target keys: ``name`` (what the receiver calls the deployment) and optional ``model``
(defaults to ``name``). Error messages name the target and the receiver's host only: webhook
URLs often carry a secret in their path.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx

from integrations.deployers.base import DeploymentState, DeployTarget
from integrations.errors import InvalidRequest, Where
from integrations.http import DEFAULT_TIMEOUT, mapped_errors, raise_for_status

SIGNATURE_HEADER = "X-Rollbot-Signature"


TIMESTAMP_HEADER = "X-Rollbot-Timestamp"


MAX_SIGNATURE_AGE_SECONDS = 300


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Rollbot-Signature`` value for a timestamp and a body."""
    message = timestamp.encode("ascii") + b"." + body
    digest = hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(
    secret: str,
    timestamp: str,
    body: bytes,
    signature: str,
    *,
    now: float,
    max_age_seconds: float = MAX_SIGNATURE_AGE_SECONDS,
) -> bool:
    """For receivers: the signature matches (constant-time) and the timestamp is fresh."""
    try:
        age = now - int(timestamp)
    except ValueError:
        return False
    if abs(age) > max_age_seconds:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


def _now() -> datetime:
    return datetime.now(UTC)


class WebhookDeployer:
    """Ask an HTTP endpoint to shift traffic, signing each request."""

    kind = "webhook"
    supports_traffic_split = True

    def __init__(
        self,
        url: str,
        *,
        client: httpx.Client,
        secret: str | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self._url = url
        self._client = client
        self._secret = secret
        self._timeout = timeout
        self._clock = clock

    def __repr__(self) -> str:
        return f"WebhookDeployer(host={httpx.URL(self._url).host!r})"

    def validate_target(self, target: DeployTarget) -> list[str]:
        """Problems with a configured target; empty when it is fine."""
        problems = []
        name = target.get("name")
        if not name:
            problems.append("target is missing 'name'")
        elif not isinstance(name, str):
            problems.append(f"target 'name' must be text, got {name!r}")
        model = target.get("model")
        if model is not None and not isinstance(model, str):
            problems.append(f"target 'model' must be text, got {model!r}")
        return problems

    def current_state(self, target: DeployTarget) -> DeploymentState:
        """GET the receiver's view of what serves now."""
        where = self._where(target, "current_state")
        self._require_valid(target, where)
        with mapped_errors(**where):
            response = self._client.get(
                self._url,
                params={"target": target["name"]},
                headers={"Accept": "application/json"},
                timeout=self._timeout,
            )
            raise_for_status(response, **where)
            data = response.json()
        return _parse_state(data, where)

    def shift_traffic(
        self,
        target: DeployTarget,
        *,
        version: str,
        source: str | None,
        percent: int,
        idempotency_key: str,
    ) -> DeploymentState:
        """POST the shift; the receiver deduplicates by ``idempotency_key``."""
        where = self._where(target, "shift_traffic")
        self._require_valid(target, where)
        if not 0 <= percent <= 100:
            raise InvalidRequest(f"percent must be between 0 and 100, got {percent}", **where)
        payload = {
            "action": "shift_traffic",
            "model": target.get("model") or target["name"],
            "target": target["name"],
            "version": version,
            "source": source,
            "percent": percent,
            "idempotency_key": idempotency_key,
        }
        body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
        timestamp = str(int(self._clock().timestamp()))
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "Idempotency-Key": idempotency_key,
            TIMESTAMP_HEADER: timestamp,
        }
        if self._secret:
            headers[SIGNATURE_HEADER] = sign(self._secret, timestamp, body)
        with mapped_errors(**where):
            response = self._client.post(
                self._url, content=body, headers=headers, timeout=self._timeout
            )
            raise_for_status(response, **where)
            answer = _json_or_none(response)
        if isinstance(answer, dict) and "version" in answer:
            return _parse_state(answer, where)
        return self.current_state(target)

    def _where(self, target: DeployTarget, operation: str) -> Where:
        described = f"{target.get('name')} at {httpx.URL(self._url).host}"
        return {"integration": self.kind, "operation": operation, "target": described}

    def _require_valid(self, target: DeployTarget, where: Where) -> None:
        if problems := self.validate_target(target):
            raise InvalidRequest("; ".join(problems), **where)


def _json_or_none(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return None  # an acknowledgement in plain text is fine; the state comes from a GET


def _version(data: dict[str, Any], key: str, where: Where) -> str | None:
    value = data.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidRequest(f"malformed state: {key!r} must be text or null", **where)
    return str(value)


def _parse_state(data: Any, where: Where) -> DeploymentState:
    """Validate the receiver's state answer."""
    if not isinstance(data, dict):
        raise InvalidRequest("malformed state: expected a JSON object", **where)
    percent = data.get("canary_percent", 0)
    if isinstance(percent, bool) or not isinstance(percent, int) or not 0 <= percent <= 100:
        raise InvalidRequest(
            "malformed state: 'canary_percent' must be a whole number from 0 to 100", **where
        )
    ready = data.get("ready", True)
    if not isinstance(ready, bool):
        raise InvalidRequest("malformed state: 'ready' must be true or false", **where)
    canary = _version(data, "canary_version", where)
    return DeploymentState(
        target=where["target"],
        version=_version(data, "version", where),
        canary_version=canary,
        canary_percent=percent if canary else 0,
        ready=ready,
        message=str(data.get("message") or ""),
    )
