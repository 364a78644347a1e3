"""`rollbot db upgrade` then `rollbot web`: health, readiness and metrics over real HTTP."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bot.store import migrate
from tests.support.postgres import free_port
from tests.support.processes import ROLLBOT, rollbot_env, run_rollbot, wait_for_http


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[object]:
    processes: list[subprocess.Popen[str]] = []

    def start(database_url: str) -> str:
        config = tmp_path / "rollbot.yaml"
        config.write_text("version: 1\n")
        port = free_port()
        env = rollbot_env(database_url, config, PORT=str(port))
        process = subprocess.Popen(
            [ROLLBOT, "web", "--host", "127.0.0.1"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=(tmp_path / f"web-{port}.log").open("w"),
            text=True,
        )
        processes.append(process)
        base = f"http://127.0.0.1:{port}"
        wait_for_http(f"{base}/healthz")
        return base

    yield start
    for process in processes:
        process.terminate()
        # uvicorn re-raises SIGTERM once it has shut down, as process managers expect.
        assert process.wait(timeout=20) in (0, -15)
    for log in tmp_path.glob("web-*.log"):
        assert "Application shutdown complete" in log.read_text()


def test_a_migrated_database_serves_health_readiness_and_metrics(
    empty_database_url: str, tmp_path: Path, serve: object
) -> None:
    config = tmp_path / "rollbot.yaml"
    config.write_text("version: 1\n")
    upgraded = run_rollbot(["db", "upgrade"], rollbot_env(empty_database_url, config))
    assert upgraded.returncode == 0, upgraded.stderr
    base = serve(empty_database_url)  # type: ignore[operator]
    assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{base}/readyz").json() == {"status": "ready"}
    metrics = httpx.get(f"{base}/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    assert 'rollbot_http_requests_total{method="GET",route="/healthz",status="200"}' in metrics.text
    # Without Slack credentials, a Slack app pointed here is told what is missing.
    slack = httpx.post(f"{base}/slack/events", content=b"token=x")
    assert slack.status_code == 503
    assert "set SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET" in slack.json()["error"]
    (log,) = tmp_path.glob("web-*.log")
    # Our log lines are JSON; anything else a library prints straight to stderr is skipped.
    entries = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    warnings = [entry["message"] for entry in entries if entry.get("level") == "warning"]
    assert any(
        w.startswith("ROLLBOT_WEB_TOKEN is not set: incident pages (/incidents/…) are open")
        for w in warnings
    )
    assert (
        "ROLLBOT_ALERTMANAGER_TOKEN is not set: anyone who reaches this address can post "
        "alerts to /alerts/alertmanager" in warnings
    )


def test_readiness_fails_with_the_reason_until_migrated(
    empty_database_url: str, serve: object
) -> None:
    base = serve(empty_database_url)  # type: ignore[operator]
    assert httpx.get(f"{base}/healthz").status_code == 200
    response = httpx.get(f"{base}/readyz")
    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "reason": f"database at migration none, expected {migrate.head_revision()}: "
        "run `rollbot db upgrade`",
    }


def test_readiness_fails_when_the_database_is_unreachable(serve: object) -> None:
    base = serve(f"postgresql://nobody@127.0.0.1:{free_port()}/nothing")  # type: ignore[operator]
    response = httpx.get(f"{base}/readyz")
    assert response.status_code == 503
    assert response.json()["reason"] == "database unreachable: OperationalError"
