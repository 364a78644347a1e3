"""Rollbot's own metrics, served at ``/metrics``, and structured logging."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from prometheus_client import Counter, Gauge, Histogram

HTTP_REQUESTS = Counter(
    "rollbot_http_requests_total", "HTTP requests served", ["route", "method", "status"]
)
HTTP_LATENCY = Histogram(
    "rollbot_http_request_seconds",
    "HTTP request latency",
    ["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)

# The worker's (served by `rollbot worker --metrics-port`).
JOB_RUNS = Counter("rollbot_job_runs_total", "Periodic job runs on the leader", ["job", "outcome"])
JOB_SECONDS = Histogram(
    "rollbot_job_seconds",
    "How long a periodic job run took",
    ["job"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
LEADER = Gauge("rollbot_worker_leader", "1 while this worker is the scheduler leader")
WATCH_VERDICTS = Counter("rollbot_watch_verdicts_total", "Watch evaluations by verdict", ["state"])
DEPLOYS_RECORDED = Counter(
    "rollbot_deploys_recorded_total", "Version changes seen at the deployers and recorded"
)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and any ``extra`` fields."""

    _STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in record.__dict__.items() if k not in self._STANDARD})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str = "INFO") -> None:
    """Structured logs on stderr for every Rollbot process."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("apscheduler").setLevel("WARNING")
