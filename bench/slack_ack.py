"""Slack ack latency: how fast `POST /slack/events` acknowledges under concurrent load.

Usage:
    python bench/slack_ack.py [--concurrency 50] [--rounds 10]

Serves the real web app (uvicorn, one process, SQLite) with the Slack surface wired to a local
fake Slack Web API, then fires rounds of ``--concurrency`` simultaneous, correctly signed
requests: slash commands (`/rollbot rollback MODEL`, whose work after the ack renders a plan,
writes the proposal and posts the card) and Approve clicks on a pending request (re-render,
policy check, decision). Prints p50 / p99 / max of the time to the HTTP response, which is
the ack Slack waits three seconds for.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from multiprocessing import Event, Process, Queue
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from slack_sdk import WebClient  # noqa: E402

from bot.slack.app import create_slack_app  # noqa: E402
from bot.slack.ids import ActionId  # noqa: E402
from bot.store import make_engine, migrate  # noqa: E402
from bot.web.app import create_app  # noqa: E402
from tests.slack.conftest import (  # noqa: E402
    APPROVERS,
    MODEL,
    World,
    build_surface,
    rollbot_config,
)
from tests.support.fake_slack import running_fake_slack  # noqa: E402
from tests.support.postgres import free_port  # noqa: E402
from tests.support.processes import wait_for_http  # noqa: E402
from tests.support.slack_signing import (  # noqa: E402
    SIGNING_SECRET,
    block_action,
    signed_headers,
    slash_command,
)

Request = Callable[[int], tuple[str, str]]


def measure(base_url: str, make: Request, *, concurrency: int, rounds: int) -> list[float]:
    """Seconds to the HTTP response of every request, ``concurrency`` sent at once per round."""
    return asyncio.run(_measure(base_url, make, concurrency=concurrency, rounds=rounds))


async def _measure(base_url: str, make: Request, *, concurrency: int, rounds: int) -> list[float]:
    latencies: list[float] = []
    numbers = itertools.count()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, timeout=10, limits=limits) as client:

        async def one(body: str, headers: dict[str, str]) -> None:
            started = time.perf_counter()
            response = await client.post("/slack/events", content=body, headers=headers)
            latencies.append(time.perf_counter() - started)
            if response.status_code != 200:
                raise RuntimeError(f"HTTP {response.status_code}: {response.text}")

        await client.get("/healthz")  # open a connection before timing anything
        for _ in range(rounds):
            signed = []
            for _ in range(concurrency):
                body, content_type = make(next(numbers))
                signed.append((body, signed_headers(body, content_type=content_type)))
            await asyncio.gather(*(one(body, headers) for body, headers in signed))
            await asyncio.sleep(0.5)  # let the work after the acks drain between rounds
    return latencies


def summary(name: str, latencies: list[float]) -> str:
    """One Markdown table row, in milliseconds."""
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (
        f"| {name} | {len(ordered)} | {statistics.median(ordered) * 1000:.1f} | "
        f"{p99 * 1000:.1f} | {ordered[-1] * 1000:.1f} |"
    )


def serve_fake_slack(urls: Queue[str], stop: Any) -> None:
    """Process 1: the fake Slack Web API, with a big approver group."""
    with running_fake_slack() as fake:
        fake.state.usergroups[APPROVERS] = [f"U{n:05d}" for n in range(5_000)]
        urls.put(fake.api_url)
        urls.put(fake.response_url("bench"))
        stop.wait()


def serve_rollbot(database_url: str, api_url: str, port: int) -> None:
    """Process 2: the web app with its Slack surface, as `rollbot web` runs it."""
    import uvicorn

    engine = make_engine(database_url)
    client = WebClient(token="xoxb-bench", base_url=api_url)
    surface = build_surface(engine, client, World(), rollbot_config(approvals=10))
    bolt = create_slack_app(surface, client=client, signing_secret=SIGNING_SECRET)
    app = create_app(engine, slack_app=bolt)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        database_url = f"sqlite:///{tmp}/bench.db"
        migrate.upgrade(database_url)
        urls: Queue[str] = Queue()
        stop = Event()  # set to stop the fake
        fake = Process(target=serve_fake_slack, args=(urls, stop), daemon=True)
        fake.start()
        api_url, response_url = urls.get(timeout=30), urls.get(timeout=30)
        port = free_port()
        server = Process(target=serve_rollbot, args=(database_url, api_url, port), daemon=True)
        server.start()
        base_url = f"http://127.0.0.1:{port}"
        try:
            wait_for_http(f"{base_url}/healthz", timeout=60)
            helps, commands, clicks = run_load(base_url, database_url, response_url, args)
        finally:
            server.terminate()
            stop.set()
            server.join(10)
            fake.join(10)
    print(
        f"{args.concurrency} concurrent requests × {args.rounds} rounds, SQLite, one web process\n"
    )
    print("| request | n | p50 ms | p99 ms | max ms |\n|---|---|---|---|---|")
    print(summary("slash command `/rollbot help` (no work after the ack)", helps))
    print(summary("slash command `/rollbot rollback MODEL`", commands))
    print(summary("button click Approve", clicks))


def run_load(
    base_url: str, database_url: str, response_url: str, args: argparse.Namespace
) -> tuple[list[float], list[float], list[float]]:
    """`help` (an ack and nothing after it), then rollbacks (leaving a request), then clicks."""

    def help_command(n: int) -> tuple[str, str]:
        return slash_command("help", user=f"UREQ{n}", response_url=response_url)

    helps = measure(base_url, help_command, concurrency=args.concurrency, rounds=args.rounds)

    def command(n: int) -> tuple[str, str]:
        return slash_command(f"rollback {MODEL}", user=f"UREQ{n}", response_url=response_url)

    commands = measure(base_url, command, concurrency=args.concurrency, rounds=args.rounds)
    time.sleep(2)
    request_id = _pending_request(make_engine(database_url))

    def approve(n: int) -> tuple[str, str]:
        return block_action(
            action_id=ActionId.APPROVE,
            value=str(request_id),
            user=f"U{n:05d}",
            response_url=response_url,
        )

    clicks = measure(base_url, approve, concurrency=args.concurrency, rounds=args.rounds)
    return helps, commands, clicks


def _pending_request(engine: object) -> int:
    from sqlmodel import Session, col, select

    from bot.store.models import ApprovalRequest

    with Session(engine) as session:  # type: ignore[call-overload]
        request = session.exec(
            select(ApprovalRequest)
            .where(ApprovalRequest.status == "pending")
            .order_by(col(ApprovalRequest.id).desc())
        ).first()
        if request is None or request.id is None:
            raise RuntimeError("no pending approval request to click on")
        return int(request.id)


if __name__ == "__main__":
    main()
