"""`rollbot web` with Slack credentials serves /slack/events, wired to the Web API it is given."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.fake_slack import FakeSlack
from tests.support.postgres import free_port
from tests.support.processes import ROLLBOT, rollbot_env, run_rollbot, wait_for_http
from tests.support.slack_signing import SIGNING_SECRET, signed_headers, slash_command


@pytest.fixture
def web_process(database_url: str, fake_slack: FakeSlack, tmp_path: Path) -> Iterator[str]:
    config = tmp_path / "rollbot.yaml"
    config.write_text("version: 1\nslack:\n  command: /rb\n")
    port = free_port()
    env = rollbot_env(
        database_url,
        config,
        PORT=str(port),
        SLACK_BOT_TOKEN="xoxb-test",
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=fake_slack.api_url,
    )
    log = (tmp_path / "web.log").open("w")
    process = subprocess.Popen([ROLLBOT, "web", "--host", "127.0.0.1"], env=env, stderr=log)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_the_web_process_answers_the_configured_command(
    web_process: str, fake_slack: FakeSlack
) -> None:
    body, content_type = slash_command("help", user="UALICE", command="/rb")
    url = f"{web_process}/slack/events"

    response = httpx.post(
        url, content=body, headers=signed_headers(body, content_type=content_type)
    )
    forged = httpx.post(
        url, content=body, headers=signed_headers(body, content_type=content_type, secret="x")
    )

    assert response.status_code == 200
    assert "`/rb incident declare" in response.json()["text"]
    assert forged.status_code == 401
    assert fake_slack.calls_to("auth.test"), "the bot token was checked against SLACK_API_URL"


def _slack_env(tmp_path: Path, api_url: str) -> dict[str, str]:
    config = tmp_path / "rollbot.yaml"
    config.write_text("version: 1\n")
    return rollbot_env(
        f"sqlite:///{tmp_path / 'r.db'}",
        config,
        PORT=str(free_port()),
        SLACK_BOT_TOKEN="xoxb-test",
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=api_url,
    )


def _the_error(stderr: str) -> str:
    """The one plain line among the JSON log lines (the Slack client logs its attempts)."""
    [line] = [line for line in stderr.splitlines() if not line.startswith("{")]
    return line


def test_a_rejected_bot_token_stops_the_web_process_in_one_line(
    fake_slack: FakeSlack, tmp_path: Path
) -> None:
    fake_slack.state.failing["auth.test"] = "invalid_auth"

    result = run_rollbot(["web"], _slack_env(tmp_path, fake_slack.api_url))

    assert result.returncode == 1
    line = _the_error(result.stderr)
    assert line.startswith(f"rollbot: Slack at {fake_slack.api_url} refused the bot token (")
    assert "invalid_auth" in line and line.endswith("check SLACK_BOT_TOKEN")


def test_an_unreachable_slack_stops_the_web_process_in_one_line(tmp_path: Path) -> None:
    nobody = f"http://127.0.0.1:{free_port()}/api/"

    result = run_rollbot(["web"], _slack_env(tmp_path, nobody))

    assert result.returncode == 1
    line = _the_error(result.stderr)
    assert line.startswith(f"rollbot: cannot reach Slack at {nobody} to check the bot token (")
    assert line.endswith("set SLACK_API_URL if Slack's Web API is elsewhere")
