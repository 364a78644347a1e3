"""A real Prometheus Alertmanager on 127.0.0.1 whose only receiver is a webhook.

It runs without clustering and with short grouping times, so an alert Prometheus sends
reaches the webhook within a second or two instead of after the production defaults.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.support.postgres import free_port
from tests.support.processes import serving
from tests.support.services import unavailable

# Debian ships the binary as prometheus-alertmanager; upstream tarballs call it alertmanager.
_BINARIES = ("prometheus-alertmanager", "alertmanager")


@dataclass(frozen=True)
class Alertmanager:
    """A running Alertmanager: its URL and where it logs."""

    url: str
    log_path: Path

    def alerts(self) -> list[dict[str, Any]]:
        """The alerts it holds now (API v2), for diagnosing a test that waited in vain."""
        response = httpx.get(f"{self.url}/api/v2/alerts", timeout=5)
        response.raise_for_status()
        alerts: list[dict[str, Any]] = response.json()
        return alerts


def alertmanager_binary() -> str | None:
    """The path of the Alertmanager binary, or None when it is not installed."""
    return next((path for name in _BINARIES if (path := shutil.which(name))), None)


def alertmanager_config(
    webhook_url: str,
    *,
    group_by: Sequence[str] = ("alertname", "model"),
    group_wait: str = "1s",
    group_interval: str = "2s",
    repeat_interval: str = "1m",
    bearer_token: str | None = None,
) -> str:
    """A configuration routing every alert to ``webhook_url``, resolved alerts included,
    with ``Authorization: Bearer`` when a token is given."""
    labels = ", ".join(group_by)
    return (
        "route:\n"
        "  receiver: rollbot\n"
        f"  group_by: [{labels}]\n"
        f"  group_wait: {group_wait}\n"
        f"  group_interval: {group_interval}\n"
        f"  repeat_interval: {repeat_interval}\n"
        "receivers:\n"
        "  - name: rollbot\n"
        "    webhook_configs:\n"
        f"      - url: {webhook_url}\n"
        "        send_resolved: true\n"
        + (
            "        http_config:\n"
            "          authorization:\n"
            f"            credentials: {bearer_token}\n"
            if bearer_token
            else ""
        )
    )


@contextmanager
def running_alertmanager(
    workdir: Path, *, webhook_url: str, **timing: Any
) -> Iterator[Alertmanager]:
    """Run Alertmanager sending to ``webhook_url`` until the block ends.

    ``timing`` goes to :func:`alertmanager_config` (``group_wait="1s"`` and so on). A missing
    binary skips the test locally and fails it in CI.
    """
    binary = alertmanager_binary()
    if binary is None:
        unavailable("alertmanager not found (apt-get install prometheus-alertmanager)")
    config = workdir / "alertmanager.yml"
    config.write_text(alertmanager_config(webhook_url, **timing))
    storage = workdir / "alertmanager-data"
    storage.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log_path = workdir / "alertmanager.log"
    command = [
        binary,
        f"--config.file={config}",
        f"--storage.path={storage}",
        f"--web.listen-address=127.0.0.1:{port}",
        # Empty: no gossip port, so parallel test runs never collide on 9094.
        "--cluster.listen-address=",
    ]
    url = f"http://127.0.0.1:{port}"
    with serving(command, ready_url=f"{url}/-/ready", log_path=log_path):
        yield Alertmanager(url=url, log_path=log_path)
