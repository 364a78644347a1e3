"""Benchmark: the postmortem of an incident with 10,000 timeline events (target: under 1 s).

Builds the recorded incident of the test suite, pads its timeline with notes and step
events through ``record_event`` (so the hash chain is real), then times gathering the facts
from the database, rendering Markdown and HTML, and drawing the chart.

    .venv/bin/python bench/postmortem_render.py [--events 10000] [--database-url URL]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from sqlmodel import Session

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.postmortem.facts import PostmortemFacts
from bot.postmortem.flows import build_facts, chart_png, render_document
from bot.store import make_engine, migrate
from bot.timeline import record_event
from tests.postmortem.builders import GENERATED_AT, at, record_incident


def build(url: str, events: int) -> int:
    """A migrated database holding one incident with ``events`` timeline events."""
    migrate.upgrade(url)
    engine = make_engine(url)
    with Session(engine) as session:
        incident_id = record_incident(session).incident_id
        for index in range(events - 18):
            kind = "note" if index % 3 else "step.succeeded"
            record_event(
                session,
                incident_id=incident_id,
                kind=kind,
                source="slack" if kind == "note" else "engine",
                actor=f"responder-{index % 7}",
                summary=f"observation {index}: queue depth {index % 97} | lag {index % 13}s",
                occurred_at=at(10) + timedelta(seconds=index * 0.1),
                pinned=index % 500 == 0,
            )
        session.commit()
    engine.dispose()
    return incident_id


def timed(action: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Median and worst wall time of ``repeat`` runs, in milliseconds."""
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        runs.append((time.perf_counter() - started) * 1000)
    return statistics.median(runs), max(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--database-url", help="default: a new SQLite file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        url = args.database_url or f"sqlite:///{Path(scratch) / 'bench.db'}"
        started = time.perf_counter()
        incident_id = build(url, args.events)
        print(f"built incident with {args.events} events in {time.perf_counter() - started:.1f}s")
        engine = make_engine(url)

        def gather() -> PostmortemFacts:
            with Session(engine) as session:
                return build_facts(session, incident_id=incident_id, now=GENERATED_AT)

        facts = gather()
        chart_png(facts)  # warm up: matplotlib's import and font cache are paid once a process
        results = {
            "gather facts from the database": timed(gather, args.repeat),
            "render Markdown": timed(lambda: render_document(facts, format="md"), args.repeat),
            "render HTML (chart by URL)": timed(
                lambda: render_document(facts, format="html", chart_src="chart.png"), args.repeat
            ),
            "draw chart PNG": timed(lambda: chart_png(facts), args.repeat),
            "total: gather + Markdown + chart": timed(
                lambda: (render_document(gather(), format="md"), chart_png(facts)), args.repeat
            ),
        }
        engine.dispose()
    print(f"| step ({args.events:,} events, {engine.dialect.name}) | median ms | worst ms |")
    print("|---|---|---|")
    for name, (median, worst) in results.items():
        print(f"| {name} | {median:.0f} | {worst:.0f} |")


if __name__ == "__main__":
    main()
