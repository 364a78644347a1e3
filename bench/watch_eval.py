"""Evaluation cost: one watch cycle over 10,000 models, grouped queries vs one query per model.

Generates OpenMetrics for every model's safe version (an hour before the deploy) and its
candidate (30 minutes since; 1 % of them degraded), backfills it with ``promtool`` into a
temporary Prometheus, then measures in separate processes (so peak memory is each mode's own):

- ``grouped``: the whole cycle as the worker runs it (``evaluate_watches`` on SQLite: grouped
  reads in chunks of models, detector in worker processes, state rows in batches, incidents
  and proposals), the same with the detector in-process (``grouped-serial``), and the
  metrics-read phase alone;
- ``per-model``: the same reader asked about one model at a time (one query per model per
  PromQL template), the cost grouping avoids.

    .venv/bin/python bench/watch_eval.py [--models 10000] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.config.models import IntegrationConfig, ModelConfig, RollbotConfig  # noqa: E402
from bot.config.watch import WatchConfig  # noqa: E402
from bot.notify import NullNotifier  # noqa: E402
from bot.store import make_engine, migrate  # noqa: E402
from bot.store.db import session_scope  # noqa: E402
from bot.store.models import DeploymentRecord  # noqa: E402
from bot.watches import judging  # noqa: E402
from bot.watches.evaluate import evaluate_watches  # noqa: E402
from bot.watches.reader import read_samples  # noqa: E402
from bot.watches.targets import WatchTarget  # noqa: E402
from integrations.metrics.base import Series  # noqa: E402
from integrations.metrics.prometheus import PrometheusSource  # noqa: E402
from tests.support.postgres import free_port  # noqa: E402
from tests.support.processes import wait_for_http  # noqa: E402
from tests.support.prometheus import backfill  # noqa: E402
from tests.watches.fakes import proposer  # noqa: E402

SCRAPE_SECONDS = 30
BASELINE_SECONDS = 3600
CANDIDATE_SECONDS = 1800
DEGRADED_EVERY = 100  # one model in a hundred serves a bad candidate
WATCH = WatchConfig(step=timedelta(minutes=1))


@dataclass
class CountingSource:
    """A metrics source that counts the queries it forwards and the time they take."""

    inner: PrometheusSource
    queries: int = 0
    seconds: float = 0.0
    series: int = 0
    log: list[str] = field(default_factory=list)

    def query(self, promql: str, *, at: datetime | None = None) -> list[Series]:
        """Not used by watches."""
        return self.inner.query(promql, at=at)

    def query_range(
        self, promql: str, *, start: datetime, end: datetime, step_seconds: float
    ) -> list[Series]:
        """Forward, counting."""
        started = time.perf_counter()
        answer = self.inner.query_range(promql, start=start, end=end, step_seconds=step_seconds)
        self.seconds += time.perf_counter() - started
        self.queries += 1
        self.series += len(answer)
        return answer


def model_name(index: int) -> str:
    return f"model-{index:05d}"


def write_history(path: Path, models: int, *, now: float) -> int:
    """Request and error counters for every model's two versions; the number of samples."""
    deploy = now - CANDIDATE_SECONDS
    written = 0
    with path.open("w") as out:
        for family, errors in (("model_requests", False), ("model_errors", True)):
            out.write(f"# TYPE {family} counter\n")
            for index in range(models):
                rng = random.Random(index * 2 + errors)
                bad = index % DEGRADED_EVERY == 0
                for version, start, end, rate in (
                    ("1", deploy - BASELINE_SECONDS - 300, deploy, 0.01),
                    ("2", deploy, now, 0.06 if bad else 0.01),
                ):
                    labels = f'model="{model_name(index)}",version="{version}"'
                    total = 0.0
                    moment = start
                    while moment <= end:
                        requests = 150 * (0.9 + 0.2 * rng.random())
                        total += (
                            round(requests * rate * (0.7 + 0.6 * rng.random()))
                            if errors
                            else (round(requests))
                        )
                        out.write(f"{family}_total{{{labels}}} {total:g} {moment:.3f}\n")
                        written += 1
                        moment += SCRAPE_SECONDS
        out.write("# EOF\n")
    return written


def start_prometheus(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    config = workdir / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 15s\n")
    port = free_port()
    process = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--storage.tsdb.retention.time=30d",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(workdir / "prometheus.log").open("w"),
    )
    url = f"http://127.0.0.1:{port}"
    wait_for_http(f"{url}/-/ready", timeout=120)
    return process, url


def bench_config(models: int) -> RollbotConfig:
    """Every model watched with the default error rate; 1m steps, as 30 s scrapes need."""
    local = IntegrationConfig(kind="local", path="unused.json")
    return RollbotConfig(
        registries={"local": local},
        deployers={"local": local},
        models={
            model_name(i): ModelConfig(registry="local", deployer="local", watch=WATCH)
            for i in range(models)
        },
    )


def targets(config: RollbotConfig, deploy: datetime) -> list[WatchTarget]:
    return [
        WatchTarget(name, model.watch, "2", deploy, "1")
        for name, model in config.models.items()
        if model.watch is not None
    ]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(mode: str, url: str, models: int, now: float, workdir: Path) -> dict[str, Any]:
    """One mode in this process: what it cost and what it decided."""
    config = bench_config(models)
    deploy = datetime.fromtimestamp(now - CANDIDATE_SECONDS, UTC)
    at = datetime.fromtimestamp(now, UTC)
    source = CountingSource(PrometheusSource(url, timeout=120))
    before = peak_rss_mb()
    started = time.perf_counter()
    if mode == "per-model":
        read = [read_samples(source, [target], now=at) for target in targets(config, deploy)]
        result: dict[str, Any] = {"models_read": sum(len(r) for r in read)}
    elif mode == "grouped-read":
        result = {"models_read": len(read_samples(source, targets(config, deploy), now=at))}
    else:
        # Worker processes on any machine for "grouped", none for "grouped-serial".
        judging.PARALLEL_MIN_CORES = 2 if mode == "grouped" else 10**6
        result = {"states": _full_cycle(config, source, deploy, at, workdir / mode)}
    wall = time.perf_counter() - started
    return {
        "mode": mode,
        "wall_seconds": round(wall, 2),
        "query_seconds": round(source.seconds, 2),
        "queries": source.queries,
        "series": source.series,
        "rss_before_mb": round(before),
        "peak_rss_mb": round(peak_rss_mb()),
        **result,
    }


def _full_cycle(
    config: RollbotConfig, source: CountingSource, deploy: datetime, at: datetime, workdir: Path
) -> dict[str, int]:
    workdir.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{workdir / 'cycle.db'}"
    migrate.upgrade(url)
    engine = make_engine(url)
    with session_scope(engine) as session:
        for name in config.models:
            session.add(
                DeploymentRecord(
                    model=name, version="1", started_at=deploy - timedelta(days=1), ended_at=deploy
                )
            )
            session.add(DeploymentRecord(model=name, version="2", started_at=deploy))
    evaluations = evaluate_watches(
        engine,
        config=config,
        source=source,
        proposer=proposer(config),
        notifier=NullNotifier(),
        now=at,
    )
    states: dict[str, int] = {}
    for evaluation in evaluations:
        states[evaluation.state] = states.get(evaluation.state, 0) + 1
    return states


def run_mode(mode: str, url: str, models: int, now: float, workdir: Path) -> dict[str, Any]:
    """``measure`` in a fresh process, so its peak memory is its own."""
    output = subprocess.run(
        [
            sys.executable,
            __file__,
            "--measure",
            mode,
            "--prometheus",
            url,
            "--models",
            str(models),
            "--now",
            str(now),
            "--workdir",
            str(workdir),
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    return result


def table(results: list[dict[str, Any]], models: int) -> str:
    lines = [
        f"| mode ({models:,} models) | wall time | time in queries | queries | series read "
        "| peak RSS (after imports) |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['mode']} | {r['wall_seconds']} s | {r['query_seconds']} s | {r['queries']:,} "
            f"| {r['series']:,} | {r['peak_rss_mb']} MB ({r['rss_before_mb']} MB) |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=10_000)
    parser.add_argument("--workdir", type=Path, default=None, help="keep the data here")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--prometheus", help=argparse.SUPPRESS)
    parser.add_argument("--now", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(
            json.dumps(measure(args.measure, args.prometheus, args.models, args.now, args.workdir))
        )
        return
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="rollbot-watch-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    now = time.time()
    started = time.perf_counter()
    samples = write_history(workdir / "history.om", args.models, now=now)
    backfill(workdir / "history.om", workdir / "data")
    print(f"backfilled {samples:,} samples in {time.perf_counter() - started:.0f} s ({workdir})")
    process, url = start_prometheus(workdir)
    try:
        results = [
            run_mode(mode, url, args.models, now, workdir)
            for mode in ("grouped", "grouped-serial", "grouped-read", "per-model")
        ]
    finally:
        process.terminate()
        process.wait(timeout=30)
    for result in results:
        print(json.dumps(result))
    print(table(results, args.models))


if __name__ == "__main__":
    main()
