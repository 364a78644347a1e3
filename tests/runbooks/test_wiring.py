"""Building integrations from configuration: secrets from the environment, errors that point."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bot.config import Settings, parse_config
from bot.errors import ConfigError
from bot.wiring import (
    build_deployer,
    build_metrics_source,
    build_registry,
    components_for,
)
from integrations.errors import IntegrationUnavailable, InvalidRequest
from integrations.metrics.prometheus import PrometheusSource
from integrations.registry.mlflow import MLflowRegistry

CONFIG_TEXT = """\
version: 1
registries:
  mlflow:
    kind: mlflow
    url: http://127.0.0.1:5000
    token_env: MLFLOW_TOKEN
  local:
    kind: local
    path: state/registry.json
    seed: seed.json
deployers:
  hook:
    kind: webhook
    url: http://127.0.0.1:9/deploy
    secret_env: HOOK_SECRET
  local: {kind: local, path: state/deployments.json}
models:
  churn:
    registry: local
    deployer: local
    target: {name: churn}
    components:
      - {name: prep, deployer: local, depends_on: [features]}
      - {name: features, deployer: local, registry_model: churn-features}
"""


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    path = tmp_path / "rollbot.yaml"
    path.write_text(CONFIG_TEXT)
    (tmp_path / "seed.json").write_text('{"models": {}, "history": {}}')
    return Settings(rollbot_config=str(path))


CONFIG = parse_config(CONFIG_TEXT)


def test_a_missing_secret_names_the_file_line_option_and_variable(settings: Settings) -> None:
    with pytest.raises(ConfigError) as raised:
        build_registry("mlflow", CONFIG, settings, environ={})
    assert str(raised.value) == (
        f"{settings.rollbot_config}:6: registries.mlflow.token_env: "
        "environment variable MLFLOW_TOKEN is not set"
    )
    with pytest.raises(ConfigError, match=r"deployers\.hook\.secret_env: environment variable "):
        build_deployer("hook", CONFIG, settings, environ={})


def test_secrets_come_from_the_environment(settings: Settings) -> None:
    registry = build_registry("mlflow", CONFIG, settings, environ={"MLFLOW_TOKEN": "t"})
    assert isinstance(registry, MLflowRegistry)


def test_an_unknown_name_lists_the_known_ones(settings: Settings) -> None:
    with pytest.raises(ConfigError, match=r"unknown registry 'nope' \(known: local, mlflow\)"):
        build_registry("nope", CONFIG, settings)


def test_a_misspelt_option_is_refused_with_its_line(tmp_path: Path) -> None:
    text = "version: 1\ndeployers:\n  local: {kind: local, pth: x}\n"
    path = tmp_path / "rollbot.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as raised:
        build_deployer("local", parse_config(text), Settings(rollbot_config=str(path)))
    assert str(raised.value).splitlines() == [
        f"{path}:3: deployers.local.path: required option for kind 'local' is missing",
        f"{path}:3: deployers.local.pth: unknown option for kind 'local' (check the spelling)",
    ]


def test_local_state_is_relative_to_the_config_and_seeded_once(
    settings: Settings, tmp_path: Path
) -> None:
    build_registry("local", CONFIG, settings)
    state = tmp_path / "state" / "registry.json"
    assert json.loads(state.read_text()) == {"models": {}, "history": {}}
    state.write_text('{"models": {}}')
    build_registry("local", CONFIG, settings)
    assert state.read_text() == '{"models": {}}'


def test_components_come_in_dependency_order_then_the_model(settings: Settings) -> None:
    components = components_for(CONFIG, settings, "churn")
    assert list(components) == ["features", "prep", "churn"]
    assert components["features"].registry_model == "churn-features"
    assert components["prep"].registry_model == "prep"


def test_no_metrics_url_means_no_metrics_source(settings: Settings) -> None:
    assert build_metrics_source(CONFIG, settings) is None
    with_url = settings.model_copy(update={"prometheus_url": "http://127.0.0.1:9090"})
    assert isinstance(build_metrics_source(CONFIG, with_url), PrometheusSource)


class _Prometheus(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if "bad" in self.path:
            self._answer(400, {"status": "error", "error": "parse error"})
        elif "boom" in self.path:
            self._answer(503, {"status": "error"})
        else:
            result = [{"metric": {"version": "4"}, "value": [1700000000, "0.25"]}]
            self._answer(200, {"status": "success", "data": {"result": result}})

    def _answer(self, status: int, body: object) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def prometheus() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Prometheus)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_prometheus_answers_become_series(prometheus: str) -> None:
    (series,) = PrometheusSource(prometheus, timeout=5).query("error_rate")
    assert series.labels == {"version": "4"}
    assert series.samples == [(1700000000.0, 0.25)]


def test_prometheus_errors_are_mapped(prometheus: str) -> None:
    source = PrometheusSource(prometheus, timeout=5)
    with pytest.raises(InvalidRequest) as bad:
        source.query("bad(")
    assert not bad.value.retryable
    with pytest.raises(IntegrationUnavailable) as down:
        source.query("boom")
    assert down.value.retryable


def test_an_unreachable_prometheus_is_retryable() -> None:
    with pytest.raises(IntegrationUnavailable) as raised:
        PrometheusSource("http://127.0.0.1:9", timeout=2).query("up")
    assert raised.value.retryable
    assert "prometheus query up on 127.0.0.1:9: unreachable" in str(raised.value)
