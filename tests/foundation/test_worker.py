"""Workers elect one scheduler leader through the database and fail over when it dies."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine

from bot.store.models import SchedulerLease
from bot.worker.leader import LeaseElection
from tests.support.postgres import free_port
from tests.support.processes import ROLLBOT, rollbot_env, wait_until


class WorkerProcess:
    """A `rollbot worker` process and its structured log."""

    def __init__(self, name: str, env: dict[str, str], log_path: Path, *options: str) -> None:
        self.name = name
        self.log_path = log_path
        self.process = subprocess.Popen(
            [ROLLBOT, "worker", *options],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log_path.open("w"),
            text=True,
        )

    def messages(self) -> list[str]:
        lines = self.log_path.read_text().splitlines()
        return [json.loads(line)["message"] for line in lines if line.startswith("{")]

    def leadership_events(self) -> list[str]:
        return [
            m
            for m in self.messages()
            if "is now the leader" in m or "lost leadership" in m or "stepped down" in m
        ]

    def is_leader(self) -> bool:
        events = self.leadership_events()
        return bool(events) and "is now the leader" in events[-1]


@pytest.fixture
def start_worker(database_url: str, tmp_path: Path) -> Iterator[object]:
    config = tmp_path / "rollbot.yaml"
    config.write_text("version: 1\n")
    env = rollbot_env(database_url, config)
    workers: list[WorkerProcess] = []

    def start(name: str, *options: str) -> WorkerProcess:
        worker = WorkerProcess(name, env, tmp_path / f"{name}.log", *options)
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        if worker.process.poll() is None:
            worker.process.kill()
            worker.process.wait()


def test_exactly_one_leader_and_failover_after_sigkill(
    database_url: str, start_worker: object
) -> None:
    first = start_worker("first")  # type: ignore[operator]
    assert wait_until(first.is_leader, timeout=30), first.messages()
    second = start_worker("second")  # type: ignore[operator]
    assert wait_until(lambda: any("standing by" in m for m in second.messages()), timeout=30)
    # The standby keeps campaigning for a while without winning.
    assert not wait_until(second.is_leader, timeout=5)
    assert first.is_leader()

    first.process.send_signal(signal.SIGKILL)
    first.process.wait()
    # The lease on SQLite expires after 15 s; PostgreSQL drops the lock with the connection.
    assert wait_until(second.is_leader, timeout=30), second.messages()


def test_sigterm_steps_down_and_exits_cleanly(start_worker: object) -> None:
    worker = start_worker("only")  # type: ignore[operator]
    assert wait_until(worker.is_leader, timeout=30), worker.messages()
    worker.process.send_signal(signal.SIGTERM)
    assert worker.process.wait(timeout=30) == 0
    messages = worker.messages()
    assert any("received SIGTERM" in m for m in messages)
    assert any("stepped down: stopping on request" in m for m in messages)
    assert not any("lost leadership" in m for m in messages)
    assert messages[-1].endswith("stopped")


def test_the_worker_serves_its_own_metrics(start_worker: object) -> None:
    port = free_port()
    worker = start_worker("measured", "--metrics-port", str(port))  # type: ignore[operator]
    assert wait_until(worker.is_leader, timeout=30), worker.messages()

    def reads(text: str) -> bool:
        try:
            return text in httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
        except httpx.HTTPError:
            return False

    assert wait_until(lambda: reads("rollbot_worker_leader 1.0"), timeout=10)
    # The runbook-runs job runs every 5 s, so one run is counted soon after leadership.
    assert wait_until(
        lambda: reads('rollbot_job_runs_total{job="runbook-runs",outcome="ok"}'), timeout=15
    )


def test_a_stopped_leader_hands_over_at_once(start_worker: object) -> None:
    first = start_worker("first")  # type: ignore[operator]
    assert wait_until(first.is_leader, timeout=30)
    second = start_worker("second")  # type: ignore[operator]
    assert wait_until(lambda: any("standing by" in m for m in second.messages()), timeout=30)
    first.process.send_signal(signal.SIGTERM)
    assert first.process.wait(timeout=30) == 0
    # A clean stop releases the lease/lock, so the standby need not wait for expiry.
    assert wait_until(second.is_leader, timeout=10), second.messages()


def test_the_leader_schedules_deploy_polls_and_watches_as_configured(tmp_path: Path) -> None:
    from datetime import timedelta

    from bot.cli.context import Runtime
    from bot.config import parse_config
    from bot.config.settings import Settings
    from bot.store.db import make_engine
    from bot.worker.jobs import periodic_jobs

    config = parse_config(
        f"""
registries: {{local: {{kind: local, path: {tmp_path}/r.json}}}}
deployers: {{local: {{kind: local, path: {tmp_path}/d.json}}}}
serving: {{poll_interval: 40s}}
models:
  fast: {{registry: local, deployer: local, target: {{name: fast}}, watch: {{interval: 5s}}}}
  slow: {{registry: local, deployer: local, target: {{name: slow}}, watch: {{interval: 1m}}}}
"""
    )
    settings = Settings(prometheus_url="http://127.0.0.1:9", rollbot_config=str(tmp_path / "x"))
    runtime = Runtime(settings, config, make_engine(f"sqlite:///{tmp_path / 'r.db'}"))

    intervals = {job.name: job.interval for job in periodic_jobs(runtime)}

    assert intervals["serving"] == timedelta(seconds=40)
    assert intervals["watches"] == timedelta(seconds=5)


def test_a_failing_job_is_logged_counted_and_runs_again_next_turn(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from datetime import timedelta

    from bot.telemetry import JOB_RUNS
    from bot.worker.main import PeriodicJob, measured

    calls: list[int] = []

    def broken() -> None:
        calls.append(1)
        raise RuntimeError("registry down")

    run = measured(PeriodicJob(name="broken-job", interval=timedelta(seconds=1), run=broken))
    before = JOB_RUNS.labels("broken-job", "error")._value.get()

    run()
    run()

    assert len(calls) == 2
    assert JOB_RUNS.labels("broken-job", "error")._value.get() == before + 2
    assert [r.getMessage() for r in caplog.records].count("job broken-job failed") == 2


def test_a_standby_that_cannot_read_the_lease_says_why_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'rollbot.db'}")  # no tables yet
    election = LeaseElection(engine, "worker-1")

    with caplog.at_level(logging.INFO, logger="bot.worker.leader"):
        assert [election.try_acquire() for _ in range(3)] == [False, False, False]
        SchedulerLease.metadata.create_all(engine, tables=[SchedulerLease.__table__])  # type: ignore[list-item]
        assert election.try_acquire()

    assert [r.getMessage() for r in caplog.records] == [
        "cannot take the scheduler lease, standing by: no such table: scheduler_lease",
        "the scheduler lease can be read again",
    ]
