"""Alert storm: 10,000 alerts posted to ``rollbot web`` as Alertmanager would send them.

Alertmanager sends one version-4 notification per alert group (here: per alert name and
model), and sends a group again, whole, when it changes or repeats. The storm is every group
posted by concurrent senders, then every group once more (the repeats), against a real
``rollbot web`` process on SQLite and, when PostgreSQL binaries are installed, on PostgreSQL.
Reports alerts accepted per second and incidents opened, which must be one per model.

    .venv/bin/python bench/alert_storm.py [--alerts 10000] [--models 100] [--per-group 50]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.store import make_engine, migrate  # noqa: E402
from bot.store.models import Alert, Incident  # noqa: E402
from tests.support.postgres import find_pg_bin, free_port, start_cluster  # noqa: E402
from tests.support.processes import ROLLBOT, rollbot_env, wait_for_http  # noqa: E402

CONFIG = "registries: {}\ndeployers: {}\nalertmanager: {model_label: model}\n"
STARTS = "2026-01-01T11:50:00.000Z"
ALERT_NAMES = ("ModelErrorRateHigh", "ModelLatencyHigh")


def notifications(alerts: int, models: int, per_group: int) -> list[dict[str, Any]]:
    """The storm as webhook bodies: groups of ``per_group`` alerts of one name and model."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for index in range(alerts):
        model = f"model-{index % models:04d}"
        name = ALERT_NAMES[(index // models) % len(ALERT_NAMES)]
        groups.setdefault((name, model), []).append(_alert(index, name, model))
    bodies = []
    for (name, model), members in sorted(groups.items()):
        for first in range(0, len(members), per_group):
            bodies.append(_notification(name, model, members[first : first + per_group]))
    return bodies


def _alert(index: int, name: str, model: str) -> dict[str, Any]:
    return {
        "status": "firing",
        "labels": {"alertname": name, "model": model, "pod": f"pod-{index}", "severity": "page"},
        "annotations": {"summary": f"{name} on {model} pod-{index}"},
        "startsAt": STARTS,
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus.local/graph",
        "fingerprint": f"{index:016x}",
    }


def _notification(name: str, model: str, alerts: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{name}", model="{model}"}}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "rollbot",
        "groupLabels": {"alertname": name, "model": model},
        "commonLabels": {"alertname": name, "model": model},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.local",
        "alerts": alerts,
    }


@contextmanager
def rollbot_web(database_url: str, workdir: Path) -> Iterator[str]:
    """A ``rollbot web`` process on a migrated database; its base URL."""
    migrate.upgrade(database_url)
    config = workdir / "rollbot.yaml"
    config.write_text(CONFIG)
    port = free_port()
    env = rollbot_env(database_url, config, PORT=str(port))
    log = (workdir / f"web-{port}.log").open("w")
    process = subprocess.Popen(
        [ROLLBOT, "web", "--host", "127.0.0.1"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{base}/healthz", timeout=60)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


def post_all(base: str, bodies: list[dict[str, Any]], senders: int) -> tuple[float, set[int]]:
    """Post every body with ``senders`` concurrent connections; wall time and statuses."""
    with httpx.Client(base_url=base, timeout=120) as client:

        def send(body: dict[str, Any]) -> int:
            return client.post("/alerts/alertmanager", json=body).status_code

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=senders) as pool:
            statuses = set(pool.map(send, bodies))
        return time.perf_counter() - started, statuses


def storm(database_url: str, workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The storm and its repeats against one database."""
    bodies = notifications(args.alerts, args.models, args.per_group)
    with rollbot_web(database_url, workdir) as base:
        first, statuses = post_all(base, bodies, args.senders)
        again, repeat_statuses = post_all(base, bodies, args.senders)
    engine = make_engine(database_url)
    with engine.connect() as connection:
        stored = connection.scalar(select(func.count()).select_from(Alert))
        incidents = connection.scalar(select(func.count()).select_from(Incident))
        models = connection.scalar(select(func.count(func.distinct(Incident.model))))
    engine.dispose()
    return {
        "database": database_url.split(":", 1)[0].split("+")[0],
        "notifications": len(bodies),
        "alerts_per_s": round(args.alerts / first),
        "repeats_per_s": round(args.alerts / again),
        "seconds": round(first, 2),
        "repeat_seconds": round(again, 2),
        "statuses": sorted(statuses | repeat_statuses),
        "alerts_stored": stored,
        "incidents": incidents,
        "models_with_incident": models,
    }


def table(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    lines = [
        f"| database | {args.alerts:,} alerts: accepted/s | repeats: accepted/s | alerts stored "
        f"| incidents opened ({args.models} models) | HTTP statuses |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['database']} | {r['alerts_per_s']:,} ({r['seconds']} s) "
            f"| {r['repeats_per_s']:,} ({r['repeat_seconds']} s) | {r['alerts_stored']:,} "
            f"| {r['incidents']} | {', '.join(map(str, r['statuses']))} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=10_000)
    parser.add_argument("--models", type=int, default=100)
    parser.add_argument("--per-group", type=int, default=50)
    parser.add_argument("--senders", type=int, default=16, help="concurrent connections")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="rollbot-storm-"))
    results = [storm(f"sqlite:///{workdir / 'storm.db'}", workdir, args)]
    pg_bin = find_pg_bin()
    if pg_bin is None:
        print("PostgreSQL binaries not found: SQLite only")
    else:
        cluster = start_cluster(pg_bin)
        try:
            cluster.admin_execute("CREATE DATABASE storm")
            results.append(storm(cluster.url("storm"), workdir, args))
        finally:
            cluster.stop()
    for result in results:
        print(json.dumps(result))
    print(table(results, args))


if __name__ == "__main__":
    main()
