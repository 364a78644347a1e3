"""The command line and the web page: what a person sees, and that failures change nothing."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot.config import RollbotConfig
from bot.store import make_engine, migrate
from bot.store.models import Incident, TimelineEvent
from bot.web.app import create_app
from tests.postmortem.builders import at, record_incident
from tests.postmortem.test_chart_and_impact import png_size
from tests.support.processes import rollbot_env, run_rollbot


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    """A migrated SQLite database holding the recorded incident, and a config file."""
    url = f"sqlite:///{tmp_path / 'r.db'}"
    migrate.upgrade(url)
    engine = make_engine(url)
    with Session(engine) as session:
        record_incident(session)
    engine.dispose()
    config = tmp_path / "rollbot.yaml"
    config.write_text("version: 1\n")
    return rollbot_env(url, config)


def _corrections(env: dict[str, str]) -> list[TimelineEvent]:
    engine = make_engine(env["DATABASE_URL"])
    with Session(engine) as session:
        events = list(
            session.exec(
                select(TimelineEvent).where(TimelineEvent.kind == "incident.time_corrected")
            ).all()
        )
    engine.dispose()
    return events


def test_the_cli_writes_markdown_and_its_chart(cli_env: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "pm.md"
    result = run_rollbot(["postmortem", "1", "--out", str(out)], cli_env)
    assert result.returncode == 0, result.stderr
    text = out.read_text()
    assert text.startswith("# Postmortem: fraud-scorer 5 degraded (incident #1)")
    assert "![The watched metrics around the incident" in text and "](pm.png)" in text
    assert png_size((tmp_path / "pm.png").read_bytes())[0] == 1000


def test_markdown_asked_for_at_the_chart_s_name_is_refused(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "pm.png"
    result = run_rollbot(["postmortem", "1", "--out", str(out)], cli_env)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"rollbot: --out {out}: the Markdown would be overwritten by its chart, which goes "
        "beside it as .png: name it .md"
    ]
    assert not out.exists()


def test_the_cli_writes_a_self_contained_html_page(cli_env: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "pm.html"
    result = run_rollbot(["postmortem", "1", "--format", "html", "--out", str(out)], cli_env)
    assert result.returncode == 0, result.stderr
    assert '<img class="chart" src="data:image/png;base64,iVBORw0KGgo' in out.read_text()


def test_an_unknown_incident_is_one_line_and_exit_1(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "pm.md"
    result = run_rollbot(["postmortem", "99", "--out", str(out)], cli_env)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == ["rollbot: incident 99 does not exist"]
    assert not out.exists()


def test_the_cli_corrects_a_key_time_on_the_timeline(cli_env: dict[str, str]) -> None:
    result = run_rollbot(
        [
            "postmortem",
            "1",
            "--set",
            "detected=2026-03-01T10:07:00Z",
            "--by",
            "alice",
            "--reason",
            "first page went out at 10:07",
        ],
        cli_env,
    )
    assert result.returncode == 0, result.stderr
    assert "| Time to detect | degraded → detected | 5m |" in result.stdout
    (event,) = _corrections(cli_env)
    assert (event.actor, event.source, event.details["key"]) == ("alice", "cli", "detected_at")


def test_a_bad_cli_correction_is_one_line_and_changes_nothing(cli_env: dict[str, str]) -> None:
    result = run_rollbot(
        ["postmortem", "1", "--set", "detected=2026-03-01T10:07:00Z", "--set", "noticed=10:00"],
        cli_env,
    )
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("rollbot: --set 'noticed=10:00': unknown key time 'noticed'")
    assert _corrections(cli_env) == []


def _client(engine: Engine) -> TestClient:
    app = create_app(engine)
    app.state.config = RollbotConfig()
    return TestClient(app)


def test_the_page_serves_the_postmortem_with_its_chart(engine: Engine) -> None:
    with Session(engine) as session:
        record_incident(session)
    client = _client(engine)
    page = client.get("/incidents/1/postmortem")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<img class="chart" src="/incidents/1/postmortem/chart.png"' in page.text
    assert "<td>Time to mitigate</td><td>detected → mitigated</td><td>8m 19s</td>" in page.text
    chart = client.get("/incidents/1/postmortem/chart.png")
    assert chart.status_code == 200
    assert chart.headers["content-type"] == "image/png"
    assert png_size(chart.content) == (1000, 580)


@pytest.mark.parametrize("path", ["/incidents/1/postmortem", "/incidents/1/postmortem/chart.png"])
def test_with_a_token_set_the_pages_ask_for_it(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    monkeypatch.setenv("ROLLBOT_WEB_TOKEN", "s3cret")
    with Session(engine) as session:
        record_incident(session)
    client = _client(engine)
    for headers in (
        {},
        {"Authorization": "Basic " + base64.b64encode(b"bob:guess").decode()},
        {"Authorization": "Basic not-base64!"},
        {"Authorization": "Bearer guess"},
        {"Authorization": "s3cret"},
    ):
        refused = client.get(path, headers=headers)
        assert refused.status_code == 401, headers
        assert refused.headers["www-authenticate"].startswith('Basic realm="Rollbot incidents"')
        assert refused.text == (
            "this incident page needs the access token: give ROLLBOT_WEB_TOKEN as the password"
        )
    assert client.get(path, auth=("anyone", "s3cret")).status_code == 200
    assert client.get(path, headers={"Authorization": "Bearer s3cret"}).status_code == 200


def test_an_unknown_incident_has_no_page(engine: Engine) -> None:
    client = _client(engine)
    for path in ("/incidents/5/postmortem", "/incidents/5/postmortem/chart.png"):
        response = client.get(path)
        assert response.status_code == 404
        assert response.text == "incident 5 does not exist"


def test_the_page_form_corrects_a_key_time(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROLLBOT_WEB_TOKEN", "s3cret")
    with Session(engine) as session:
        record_incident(session)
    client = _client(engine)
    response = client.post(
        "/incidents/1/postmortem/key-times",
        data={
            "key": "mitigated_at",
            "at": "2026-03-01T10:20:00+00:00",
            "actor": "bob",
            "token": "s3cret",
        },
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/incidents/1/postmortem"
    page = client.get("/incidents/1/postmortem", auth=("bob", "s3cret")).text
    assert "<td>Time to mitigate</td><td>detected → mitigated</td><td>10m</td>" in page
    assert "corrected by bob" in page


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"key": "mitigated", "at": "2026-03-01T10:20:00"}, "fill in actor"),
        ({"key": "mitigated", "at": "soon", "actor": "bob"}, "'soon' is not an ISO 8601 time"),
        ({"key": "fixed", "at": "2026-03-01T10:20:00Z", "actor": "bob"}, "unknown key time"),
    ],
)
def test_a_bad_form_says_why_and_changes_nothing(
    engine: Engine, form: dict[str, str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROLLBOT_WEB_TOKEN", "s3cret")
    with Session(engine) as session:
        record_incident(session)
    response = _client(engine).post(
        "/incidents/1/postmortem/key-times", data={**form, "token": "s3cret"}
    )
    assert response.status_code == 400
    assert response.text.startswith("key time not corrected: ")
    assert message in response.text
    with Session(engine) as session:
        incident = session.get(Incident, 1)
        assert incident is not None and incident.mitigated_at != at(20)
        kinds = session.exec(select(TimelineEvent.kind)).all()
        assert "incident.time_corrected" not in kinds


@pytest.mark.parametrize(
    ("configured", "given", "message"),
    [
        (None, "anything", "corrections from the page are off; set ROLLBOT_WEB_TOKEN"),
        ("s3cret", "guess", "wrong access token"),
        ("s3cret", "", "wrong access token"),
    ],
)
def test_a_correction_without_the_token_is_refused_and_changes_nothing(
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
    configured: str | None,
    given: str,
    message: str,
) -> None:
    if configured:
        monkeypatch.setenv("ROLLBOT_WEB_TOKEN", configured)
    else:
        monkeypatch.delenv("ROLLBOT_WEB_TOKEN", raising=False)
    with Session(engine) as session:
        record_incident(session)
    form = {"key": "mitigated_at", "at": "2026-03-01T10:20:00+00:00", "actor": "x", "token": given}
    response = _client(engine).post("/incidents/1/postmortem/key-times", data=form)
    assert response.status_code == 403
    assert message in response.text
    with Session(engine) as session:
        kinds = session.exec(select(TimelineEvent.kind)).all()
        assert "incident.time_corrected" not in kinds


def test_the_request_paths_do_not_import_matplotlib() -> None:
    code = (
        "import sys, bot.web.app, bot.postmortem.flows, bot.cli.postmortem; "
        "print('matplotlib' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr
