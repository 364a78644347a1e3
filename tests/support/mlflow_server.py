"""Run a real ``mlflow server`` on 127.0.0.1 for tests and seed it through its REST API."""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

STARTUP_DEADLINE_SECONDS = 120.0
_STOP_GRACE_SECONDS = 15.0


@dataclass(frozen=True)
class MLflowServer:
    """A running MLflow server: its URL, its log, and helpers to seed models."""

    base_url: str
    log_path: Path

    def create_model(self, name: str) -> None:
        """Create a registered model."""
        self._post("registered-models/create", {"name": name})

    def create_version(
        self, model: str, *, source: str, tags: Mapping[str, str] | None = None
    ) -> str:
        """Create a model version with a source and tags; returns its version number."""
        body: dict[str, Any] = {"name": model, "source": source}
        if tags:
            body["tags"] = [{"key": k, "value": v} for k, v in tags.items()]
        answer = self._post("model-versions/create", body)
        return str(answer["model_version"]["version"])

    def set_alias(self, model: str, alias: str, version: str) -> None:
        """Point an alias at a version, bypassing the adapter under test."""
        self._post("registered-models/alias", {"name": model, "alias": alias, "version": version})

    def seed_model(
        self, name: str, *, versions: int, tags: Mapping[str, Mapping[str, str]] | None = None
    ) -> list[str]:
        """Create a model with ``versions`` versions; ``tags`` maps a version to its tags."""
        self.create_model(name)
        # MLflow only accepts a local-path source together with a run, so sources are URIs.
        return [
            self.create_version(
                name, source=f"s3://rollbot-test/{name}/{n}", tags=(tags or {}).get(str(n))
            )
            for n in range(1, versions + 1)
        ]

    def _post(self, endpoint: str, body: Mapping[str, Any]) -> dict[str, Any]:
        response = httpx.post(f"{self.base_url}/api/2.0/mlflow/{endpoint}", json=body, timeout=30)
        response.raise_for_status()
        answer: dict[str, Any] = response.json()
        return answer


def mlflow_missing_reason() -> str | None:
    """Why an MLflow server cannot be started here, or None when it can."""
    try:
        spec = importlib.util.find_spec("mlflow")
    except (ImportError, ValueError):  # ValueError: a test blocked it via sys.modules
        spec = None
    if spec is None:
        return "mlflow is not installed in this environment (pip install -e '.[dev]')"
    if _mlflow_cli() is None:
        return "the mlflow command line is not installed next to this Python"
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def running_mlflow_server(
    workdir: Path, *, startup_deadline: float = STARTUP_DEADLINE_SECONDS
) -> Iterator[MLflowServer]:
    """Start ``mlflow server`` with its database and artifacts in ``workdir``; stop it after."""
    cli = _mlflow_cli()
    if cli is None:
        raise RuntimeError("the mlflow command line is not installed")
    port = free_port()
    log_path = workdir / "mlflow-server.log"
    command = [
        cli,
        "server",
        "--backend-store-uri",
        f"sqlite:///{workdir / 'mlflow.db'}",
        "--default-artifact-root",
        str(workdir / "artifacts"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    # Telemetry would try to reach the internet; tests stay on 127.0.0.1.
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
    with log_path.open("wb") as log:
        # A new session makes the server the leader of its own process group, so stopping
        # it also stops the uvicorn worker and the job runner it spawns.
        process = subprocess.Popen(
            command,
            cwd=workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = MLflowServer(base_url=f"http://127.0.0.1:{port}", log_path=log_path)
    try:
        _wait_until_healthy(process, server, startup_deadline)
        yield server
    finally:
        _stop(process)


def _mlflow_cli() -> str | None:
    beside_python = Path(sys.executable).parent / "mlflow"
    if beside_python.exists():
        return str(beside_python)
    return shutil.which("mlflow")


def _wait_until_healthy(
    process: subprocess.Popen[bytes], server: MLflowServer, deadline: float
) -> None:
    """Poll ``/health`` until it answers 200, the process dies, or the deadline passes."""
    give_up_at = time.monotonic() + deadline
    while time.monotonic() < give_up_at:
        if process.poll() is not None:
            raise RuntimeError(
                f"mlflow server exited with code {process.returncode} during startup:\n"
                + _log_tail(server.log_path)
            )
        try:
            if httpx.get(f"{server.base_url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass  # not listening yet
        time.sleep(0.25)
    raise RuntimeError(
        f"mlflow server did not become healthy within {deadline:.0f}s:\n"
        + _log_tail(server.log_path)
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate the server's process group, killing whatever is left after a grace period."""
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with suppress(subprocess.TimeoutExpired):
        process.wait(timeout=_STOP_GRACE_SECONDS)
    # The uvicorn worker and the job runner may outlive the leader; the group is still ours.
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
