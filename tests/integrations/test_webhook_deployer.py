"""WebhookDeployer against a real local receiver that implements the documented contract."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from integrations.deployers.base import Deployer, DeploymentState
from integrations.deployers.webhook import WebhookDeployer, verify_signature
from integrations.errors import (
    AuthFailed,
    Conflict,
    IntegrationError,
    IntegrationTimeout,
    IntegrationUnavailable,
    InvalidRequest,
    NotFound,
)

SECRET = "whsec-0123456789abcdef"
PATH_TOKEN = "T0KEN-IN-PATH-abc123"
TARGET = {"name": "fraud-prod", "model": "fraud"}
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


class Receiver:
    """What a user's deploy system does with Rollbot's webhook: state, dedupe, signatures."""

    def __init__(self) -> None:
        self.state: dict[str, Any] = {"version": "6", "canary_version": None, "canary_percent": 0}
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.applied_keys: list[str] = []
        self.fail_with: int | None = None
        self.state_in_answer = False
        self.lock = threading.Lock()

    def shift(self, body: dict[str, Any]) -> None:
        if body["idempotency_key"] in self.applied_keys:
            return
        self.applied_keys.append(body["idempotency_key"])
        if body["percent"] == 100:
            self.state = {"version": body["version"], "canary_version": None, "canary_percent": 0}
        else:
            self.state = {**self.state, "canary_version": body["version"]}
            self.state["canary_percent"] = body["percent"]


def make_handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _answer(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            query = parse_qs(urlparse(self.path).query)
            if receiver.fail_with:
                return self._answer(receiver.fail_with, {"error": "deploy system down"})
            if query.get("target") != ["fraud-prod"]:
                return self._answer(404, {"error": "unknown target"})
            with receiver.lock:
                self._answer(200, {**receiver.state, "ready": True})

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers["Content-Length"]))
            with receiver.lock:
                receiver.received.append((dict(self.headers), raw))
            if receiver.fail_with:
                return self._answer(receiver.fail_with, {"error": "try later"})
            signed = self.headers["X-Rollbot-Timestamp"].encode() + b"." + raw
            expected = "sha256=" + hmac.new(SECRET.encode(), signed, hashlib.sha256).hexdigest()
            if not hmac.compare_digest(self.headers.get("X-Rollbot-Signature", ""), expected):
                return self._answer(401, {"error": "bad signature"})
            with receiver.lock:
                receiver.shift(json.loads(raw))
                answer = {**receiver.state, "ready": False} if receiver.state_in_answer else {}
            self._answer(202, answer)

    return Handler


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    state = Receiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield state, f"http://127.0.0.1:{server.server_address[1]}/hooks/{PATH_TOKEN}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client() as http:
        yield http


def webhook(url: str, client: httpx.Client, secret: str | None = SECRET) -> WebhookDeployer:
    return WebhookDeployer(url, client=client, secret=secret, timeout=5.0, clock=lambda: NOW)


def shift(deployer: WebhookDeployer, version: str, percent: int, key: str) -> DeploymentState:
    return deployer.shift_traffic(
        TARGET, version=version, source=f"s3://m/{version}", percent=percent, idempotency_key=key
    )


def test_shift_posts_the_documented_payload(
    receiver: tuple[Receiver, str], client: httpx.Client
) -> None:
    state, url = receiver
    deployer = webhook(url, client)
    assert isinstance(deployer, Deployer) and deployer.supports_traffic_split

    result = shift(deployer, "7", 25, "run-1:step-1")

    ((headers, raw),) = state.received
    assert json.loads(raw) == {
        "action": "shift_traffic",
        "model": "fraud",
        "target": "fraud-prod",
        "version": "7",
        "source": "s3://m/7",
        "percent": 25,
        "idempotency_key": "run-1:step-1",
    }
    assert headers["Idempotency-Key"] == "run-1:step-1"
    assert headers["X-Rollbot-Timestamp"] == str(int(NOW.timestamp()))
    assert result == DeploymentState(
        target="fraud-prod at 127.0.0.1", version="6", canary_version="7", canary_percent=25
    )


def test_signature_is_verifiable_by_the_receiver(
    receiver: tuple[Receiver, str], client: httpx.Client
) -> None:
    state, url = receiver
    shift(webhook(url, client), "7", 100, "k")

    ((headers, raw),) = state.received
    timestamp, signature = headers["X-Rollbot-Timestamp"], headers["X-Rollbot-Signature"]
    recomputed = hmac.new(SECRET.encode(), f"{timestamp}.".encode() + raw, hashlib.sha256)
    assert signature == f"sha256={recomputed.hexdigest()}"
    now = NOW.timestamp()
    assert verify_signature(SECRET, timestamp, raw, signature, now=now)
    assert not verify_signature(SECRET, timestamp, raw + b" ", signature, now=now)
    # A replay of the same request later than five minutes is refused.
    assert not verify_signature(SECRET, timestamp, raw, signature, now=now + 301)
    assert not verify_signature(SECRET, str(int(now) + 1), raw, signature, now=now)
    assert state.applied_keys == ["k"]


def test_wrong_secret_is_refused_as_auth_failure(
    receiver: tuple[Receiver, str], client: httpx.Client
) -> None:
    state, url = receiver

    with pytest.raises(AuthFailed) as caught:
        shift(webhook(url, client, secret="wrong"), "7", 100, "k")

    assert str(caught.value) == (
        "webhook shift_traffic fraud-prod at 127.0.0.1: HTTP 401: not authorized"
    )
    assert state.state["version"] == "6"


def test_no_secret_sends_no_signature(receiver: tuple[Receiver, str], client: httpx.Client) -> None:
    state, url = receiver

    with pytest.raises(AuthFailed):
        shift(webhook(url, client, secret=None), "7", 100, "k")

    ((headers, _),) = state.received
    assert "X-Rollbot-Signature" not in headers


def test_shift_25_50_100_and_repeat(receiver: tuple[Receiver, str], client: httpx.Client) -> None:
    state, url = receiver
    deployer = webhook(url, client)

    assert shift(deployer, "7", 25, "a").serving_percent("7") == 25
    assert shift(deployer, "7", 50, "b").serving_percent("7") == 50
    final = shift(deployer, "7", 100, "c")
    repeated = shift(deployer, "7", 100, "c")

    assert final == repeated == DeploymentState(target="fraud-prod at 127.0.0.1", version="7")
    assert state.applied_keys == ["a", "b", "c"]
    assert [h["Idempotency-Key"] for h, _ in state.received] == ["a", "b", "c", "c"]


def test_state_in_the_post_answer_is_used(
    receiver: tuple[Receiver, str], client: httpx.Client
) -> None:
    state, url = receiver
    state.state_in_answer = True

    result = shift(webhook(url, client), "7", 100, "k")

    assert (result.version, result.ready) == ("7", False)


def test_current_state_unknown_target_is_not_found(
    receiver: tuple[Receiver, str], client: httpx.Client
) -> None:
    _, url = receiver

    with pytest.raises(NotFound, match=r"^webhook current_state churn at 127\.0\.0\.1: HTTP 404"):
        webhook(url, client).current_state({"name": "churn"})


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (409, Conflict),
        (500, IntegrationUnavailable),
        (503, IntegrationUnavailable),
        (422, InvalidRequest),
    ],
)
def test_receiver_errors_are_mapped(
    receiver: tuple[Receiver, str],
    client: httpx.Client,
    status: int,
    error: type[IntegrationError],
) -> None:
    state, url = receiver
    state.fail_with = status

    with pytest.raises(error) as caught:
        shift(webhook(url, client), "7", 25, "k")

    assert str(caught.value).startswith(
        f"webhook shift_traffic fraud-prod at 127.0.0.1: HTTP {status}"
    )
    assert caught.value.retryable is (status != 422)
    assert PATH_TOKEN not in str(caught.value) and SECRET not in str(caught.value)


def test_unreachable_receiver_is_unavailable(client: httpx.Client) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again before the request: nothing listens

    with pytest.raises(IntegrationUnavailable, match="unreachable") as caught:
        shift(webhook(f"http://127.0.0.1:{port}/hooks/{PATH_TOKEN}", client), "7", 25, "k")

    assert PATH_TOKEN not in str(caught.value)


def test_timeout_is_mapped() -> None:
    def never_answers(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("read timed out", request=request)

    client = httpx.Client(transport=httpx.MockTransport(never_answers))
    deployer = webhook(f"https://deploy.example.com/hooks/{PATH_TOKEN}", client)

    with pytest.raises(IntegrationTimeout) as caught:
        shift(deployer, "7", 25, "k")

    assert str(caught.value) == (
        "webhook shift_traffic fraud-prod at deploy.example.com: timed out (ReadTimeout)"
    )


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        ([1, 2], "expected a JSON object"),
        ({"version": "6", "canary_version": "7", "canary_percent": 150}, "'canary_percent'"),
        ({"version": "6", "ready": "yes"}, "'ready' must be true or false"),
        ({"version": {"id": 6}}, "'version' must be text or null"),
    ],
)
def test_malformed_state_is_invalid(answer: Any, problem: str) -> None:
    client = httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(200, json=answer)))

    with pytest.raises(InvalidRequest, match=f"malformed state: {problem}"):
        webhook("https://deploy.example.com/state", client).current_state(TARGET)


def test_invalid_target_and_percent_are_refused_before_sending() -> None:
    sent: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200)

    client = httpx.Client(transport=httpx.MockTransport(record))
    deployer = webhook("https://deploy.example.com/hook", client)

    assert deployer.validate_target({"model": "fraud"}) == ["target is missing 'name'"]
    with pytest.raises(InvalidRequest, match="target is missing 'name'"):
        deployer.current_state({})
    with pytest.raises(InvalidRequest, match="percent must be between 0 and 100, got 101"):
        shift(deployer, "7", 101, "k")
    assert sent == []
    assert PATH_TOKEN not in repr(webhook(f"https://h/{PATH_TOKEN}", client))
