"""A real Prometheus on 127.0.0.1 with history backfilled through ``promtool``.

Deploy histories are written as OpenMetrics (request and error counters per model and
version, and a p99 latency gauge), turned into TSDB blocks with
``promtool tsdb create-blocks-from openmetrics``, and served by a ``prometheus`` whose
retention covers them. Timestamps are relative to now, so range queries ending now work.
"""

from __future__ import annotations

import random
import shutil
import subprocess
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.postgres import free_port
from tests.support.processes import serving


@dataclass(frozen=True)
class ServedVersion:
    """A model version serving from ``start`` to ``end`` (unix seconds) at a steady rate."""

    model: str
    version: str
    start: float
    end: float
    rps: float = 10.0
    error_rate: float = 0.01
    latency: float = 0.2


@dataclass(frozen=True)
class Prometheus:
    """A running Prometheus: its URL and where it logs."""

    url: str
    log_path: Path


def prometheus_missing_reason() -> str | None:
    """Why Prometheus cannot run here, or None."""
    for binary in ("prometheus", "promtool"):
        if shutil.which(binary) is None:
            return f"{binary} not found (apt-get install prometheus)"
    return None


def write_openmetrics(path: Path, served: Iterable[ServedVersion], *, scrape: float = 15) -> None:
    """Counters and a latency gauge for every served version, one sample per scrape."""
    versions = list(served)
    families = (
        ("model_requests", "counter", "_total"),
        ("model_errors", "counter", "_total"),
        ("model_latency_p99_seconds", "gauge", ""),
    )
    with path.open("w") as out:
        for family, kind, suffix in families:
            out.write(f"# TYPE {family} {kind}\n")
            for version in versions:
                for moment, requests, errors, latency in _scrapes(version, scrape):
                    value = {"model_requests": requests, "model_errors": errors}.get(
                        family, latency
                    )
                    labels = f'model="{_escaped(version.model)}",version="{version.version}"'
                    out.write(f"{family}{suffix}{{{labels}}} {value:g} {moment:.3f}\n")
        out.write("# EOF\n")


def _scrapes(version: ServedVersion, scrape: float) -> Iterator[tuple[float, float, float, float]]:
    rng = random.Random(f"{version.model}/{version.version}")
    requests = errors = 0.0
    moment = version.start
    while moment <= version.end:
        batch = rng.randint(int(version.rps * scrape * 0.8), int(version.rps * scrape * 1.2))
        requests += batch
        errors += sum(rng.random() < version.error_rate for _ in range(batch))
        yield moment, requests, errors, version.latency * (0.95 + 0.1 * rng.random())
        moment += scrape


# An alert on any model's error rate over 5 %. "for: 10s" holds the first send until
# Prometheus has found its Alertmanager (about 5 s after it starts).
ERROR_RATE_ALERT_RULES = """
groups:
  - name: model-errors
    interval: 1s
    rules:
      - alert: ModelErrorRateHigh
        expr: >
          sum by (model, version) (increase(model_errors_total[10m]))
          / sum by (model, version) (increase(model_requests_total[10m])) > 0.05
        for: 10s
        labels: {severity: page}
        annotations:
          summary: "error rate {{ $value | humanizePercentage }} on {{ $labels.model }}"
"""


def backfill(openmetrics: Path, data_dir: Path) -> None:
    """Turn OpenMetrics text into TSDB blocks in ``data_dir``."""
    data_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["promtool", "tsdb", "create-blocks-from", "openmetrics", str(openmetrics), str(data_dir)],
        check=True,
        capture_output=True,
        timeout=600,
    )


@contextmanager
def running_prometheus(
    workdir: Path,
    served: Iterable[ServedVersion],
    *,
    rules: str | None = None,
    alertmanager_url: str | None = None,
) -> Iterator[Prometheus]:
    """Backfill ``served`` and run Prometheus over it until the block ends."""
    data = workdir / "data"
    metrics_file = workdir / "history.om"
    write_openmetrics(metrics_file, served)
    backfill(metrics_file, data)
    config = workdir / "prometheus.yml"
    lines = ["global:", "  evaluation_interval: 1s", "  scrape_interval: 15s"]
    if rules:
        (workdir / "rules.yml").write_text(rules)
        lines += ["rule_files:", f"  - {workdir / 'rules.yml'}"]
    if alertmanager_url:
        target = alertmanager_url.removeprefix("http://")
        lines += [
            "alerting:",
            "  alertmanagers:",
            "    - static_configs:",
            f"        - targets: ['{target}']",
        ]
    config.write_text("\n".join(lines) + "\n")
    port = free_port()
    log_path = workdir / "prometheus.log"
    command = [
        "prometheus",
        f"--config.file={config}",
        f"--storage.tsdb.path={data}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--storage.tsdb.retention.time=30d",
    ]
    if alertmanager_url:
        # Re-send firing alerts every second, not every minute: tests wait on delivery.
        command.append("--rules.alert.resend-delay=1s")
    url = f"http://127.0.0.1:{port}"
    with serving(command, ready_url=f"{url}/-/ready", log_path=log_path, ready_timeout=60):
        yield Prometheus(url=url, log_path=log_path)


def _escaped(label_value: str) -> str:
    """An OpenMetrics label value: backslash, quote and newline escaped."""
    return label_value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
