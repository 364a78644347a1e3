"""The worker process: standby until elected, then the one scheduler of periodic jobs.

The scheduler holds no state of its own: every job reads what to do from the database, so
a new leader picks up exactly where a dead one stopped.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from types import FrameType

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy.engine import Engine

from bot.telemetry import JOB_RUNS, JOB_SECONDS, LEADER
from bot.worker.leader import LeaderElection, election_for

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PeriodicJob:
    """A job the leader runs every ``interval``; it must be safe to run on any worker."""

    name: str
    interval: timedelta
    run: Callable[[], None]


def measured(job: PeriodicJob) -> Callable[[], None]:
    """The job's body, timed and counted; a failure is logged and counted, and the job runs
    again at its next turn."""

    def run() -> None:
        started = time.monotonic()
        try:
            job.run()
        except Exception:
            JOB_RUNS.labels(job.name, "error").inc()
            log.exception("job %s failed", job.name)
        else:
            JOB_RUNS.labels(job.name, "ok").inc()
        finally:
            JOB_SECONDS.labels(job.name).observe(time.monotonic() - started)

    return run


def worker_identity() -> str:
    """host:pid, enough to tell workers apart in logs and leases."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Worker:
    """Campaign for leadership; while leader, run the jobs; on stop, step down cleanly."""

    def __init__(
        self,
        engine: Engine,
        jobs: list[PeriodicJob],
        *,
        identity: str | None = None,
        poll_interval: timedelta = timedelta(seconds=2),
        election: LeaderElection | None = None,
    ) -> None:
        self.identity = identity or worker_identity()
        self._jobs = jobs
        self._poll_seconds = poll_interval.total_seconds()
        self._election = election or election_for(engine, self.identity)
        self._scheduler: BackgroundScheduler | None = None
        self.stopping = threading.Event()

    @property
    def is_leader(self) -> bool:
        """Whether this worker runs the scheduler now."""
        return self._scheduler is not None

    def run(self) -> None:
        """Run until :meth:`stop` (or SIGTERM via :meth:`install_signal_handlers`)."""
        log.info("worker %s started; standing by for leadership", self.identity)
        try:
            while not self.stopping.is_set():
                self._tick()
                self.stopping.wait(self._poll_seconds)
        finally:
            # A stop asked for (SIGTERM, SIGINT, stop()) is no loss of leadership.
            ending = "stopping on request" if self.stopping.is_set() else "shutting down"
            self._step_down(outcome=f"stepped down: {ending}")
            log.info("worker %s stopped", self.identity)

    def stop(self) -> None:
        """Ask the run loop to finish."""
        self.stopping.set()

    def install_signal_handlers(self) -> None:
        """SIGTERM and SIGINT stop the worker after the current jobs finish."""

        def handle(signum: int, _frame: FrameType | None) -> None:
            log.info("worker %s received %s", self.identity, signal.Signals(signum).name)
            self.stop()

        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)

    def _tick(self) -> None:
        try:
            if self.is_leader:
                if not self._election.still_leader():
                    self._step_down(outcome="lost leadership: lost the leader lock")
            elif self._election.try_acquire():
                self._become_leader()
        except Exception:  # the database may be briefly away; keep campaigning
            log.exception("worker %s: leadership check failed", self.identity)
            self._step_down(outcome="lost leadership: database error")

    def _become_leader(self) -> None:
        scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=4)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30},
            timezone="UTC",
        )
        for job in self._jobs:
            scheduler.add_job(
                measured(job), "interval", seconds=job.interval.total_seconds(), id=job.name
            )
        scheduler.start()
        self._scheduler = scheduler
        LEADER.set(1)
        log.info("worker %s is now the leader (%d jobs scheduled)", self.identity, len(self._jobs))

    def _step_down(self, *, outcome: str) -> None:
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=True)
            self._scheduler = None
            LEADER.set(0)
            log.info("worker %s %s", self.identity, outcome)
        try:
            self._election.release()
        except Exception:
            log.debug("releasing leadership failed", exc_info=True)
