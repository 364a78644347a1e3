"""Slack ack latency: how fast `POST /slack/events` acknowledges under concurrent load.

Usage:
    python bench/slack_ack.py [--concurrency 50] [--rounds 20] [--warmup 5]

Three processes: a fake Slack Web API; the web app served as `rollbot web` serves it (uvicorn
with httptools and uvloop, one process, SQLite) with its Slack surface wired to the fake; and
this load generator. The generator keeps ``--concurrency`` keep-alive connections open and,
per round, writes one correctly signed request on each at once, timing every request from
the write to its full HTTP response (the ack Slack waits three seconds for). All requests are
signed before any is timed, so signing costs the measurement nothing; the client speaks raw
HTTP/1.1 on uvloop so that it takes little CPU from the server on a small machine. Warm-up
rounds of every kind run first and are not counted.

Kinds: `/rollbot help` (answered in the ack), `/rollbot rollback MODEL` (the follow-up renders
a plan, writes the proposal and posts the card) and Approve clicks on a pending request
(policy check, decision, card update).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import sys
import tempfile
import time
from collections.abc import Callable
from multiprocessing import Event, Process, Queue
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.slack.ids import ActionId  # noqa: E402
from bot.store import make_engine, migrate  # noqa: E402
from tests.slack.conftest import APPROVERS, MODEL  # noqa: E402
from tests.support.fake_slack import running_fake_slack  # noqa: E402
from tests.support.postgres import free_port  # noqa: E402
from tests.support.processes import wait_for_http  # noqa: E402
from tests.support.slack_signing import block_action, signed_headers, slash_command  # noqa: E402

MakeBody = Callable[[int], tuple[str, str]]
Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


def http_request(port: int, body: str, content_type: str) -> bytes:
    """A signed POST /slack/events as raw HTTP/1.1 bytes."""
    payload = body.encode()
    headers = signed_headers(body, content_type=content_type)
    lines = [
        "POST /slack/events HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        f"Content-Length: {len(payload)}",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


async def exchange(connection: Connection, request: bytes) -> tuple[float, int]:
    """Send one request and read its whole response; (seconds, status)."""
    reader, writer = connection
    started = time.perf_counter()
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length:
        await reader.readexactly(length)
    return time.perf_counter() - started, int(head.split(b" ", 2)[1])


async def load(
    port: int, make: MakeBody, *, concurrency: int, rounds: int, pause: float
) -> list[float]:
    """Latencies of ``rounds`` bursts of ``concurrency`` simultaneous requests."""
    numbers = itertools.count(int(time.time() * 1000) % 1_000_000 * 1000)
    bursts = [
        [http_request(port, *make(next(numbers))) for _ in range(concurrency)]
        for _ in range(rounds)
    ]
    connections = [await asyncio.open_connection("127.0.0.1", port) for _ in range(concurrency)]
    latencies: list[float] = []
    try:
        for burst in bursts:
            results = await asyncio.gather(*map(exchange, connections, burst))
            refused = [status for _, status in results if status != 200]
            if refused:
                raise RuntimeError(f"{len(refused)} requests refused: HTTP {refused[0]}")
            latencies += [seconds for seconds, _ in results]
            await asyncio.sleep(pause)  # let the follow-up work of the burst drain
    finally:
        for _, writer in connections:
            writer.close()
    return latencies


def measure(port: int, make: MakeBody, args: argparse.Namespace) -> list[float]:
    """Warm up, then measure, one request kind."""
    import uvloop

    options = {"concurrency": args.concurrency, "pause": args.pause}
    uvloop.run(load(port, make, rounds=args.warmup, **options))
    return uvloop.run(load(port, make, rounds=args.rounds, **options))


def percentile(ordered: list[float], share: float) -> float:
    """The nearest-rank percentile of sorted values."""
    return ordered[min(len(ordered) - 1, max(0, int(len(ordered) * share + 0.5) - 1))]


def summary(name: str, latencies: list[float]) -> str:
    """One Markdown table row, in milliseconds."""
    ordered = sorted(latencies)
    cells = [percentile(ordered, share) * 1000 for share in (0.5, 0.95, 0.99)]
    numbers = " | ".join(f"{value:.1f}" for value in [*cells, ordered[-1] * 1000])
    return f"| {name} | {len(ordered)} | {numbers} |"


def serve_fake_slack(urls: Queue[str], stop: Any) -> None:
    """Process 1: the fake Slack Web API, with a big approver group."""
    with running_fake_slack() as fake:
        fake.state.usergroups[APPROVERS] = [f"U{n:05d}" for n in range(5_000)]
        urls.put(fake.api_url)
        urls.put(fake.response_url("bench"))
        stop.wait()


def run_follow_ups(database_url: str, api_url: str) -> None:
    """Process 4 with ``--follow-ups worker``: what the worker's follow-up job does."""
    from slack_sdk import WebClient

    from bot.slack.follow_ups import FollowUpRunner
    from tests.slack.conftest import World, build_surface, rollbot_config

    engine = make_engine(database_url)
    client = WebClient(token="xoxb-bench", base_url=api_url)
    surface = build_surface(engine, client, World(), rollbot_config(approvals=10))
    runner = FollowUpRunner(surface, client, poll_seconds=0.2)
    runner.start().join()


def serve_rollbot(database_url: str, api_url: str, port: int, follow_ups: str) -> None:
    """Process 2: the web app with its Slack surface, served as `rollbot web` serves it."""
    import uvicorn
    from slack_sdk import WebClient

    from bot.slack.app import create_slack_app
    from bot.web.app import create_app, freeze_startup_heap
    from tests.slack.conftest import World, build_surface, rollbot_config
    from tests.support.slack_signing import SIGNING_SECRET

    engine = make_engine(database_url)
    client = WebClient(token="xoxb-bench", base_url=api_url)
    surface = build_surface(engine, client, World(), rollbot_config(approvals=10))
    bolt = create_slack_app(
        surface,
        client=client,
        signing_secret=SIGNING_SECRET,
        run_follow_ups=follow_ups == "web",
    )
    app = create_app(engine, slack_app=bolt)
    freeze_startup_heap()
    uvicorn.run(
        app, host="127.0.0.1", port=port, loop="uvloop", http="httptools", log_level="warning"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument(
        "--follow-ups", choices=["web", "worker"], default="web", help="slack.follow_ups"
    )
    parser.add_argument("--pause", type=float, default=1.0, help="seconds between bursts")
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
        server = Process(
            target=serve_rollbot, args=(database_url, api_url, port, args.follow_ups), daemon=True
        )
        server.start()
        worker = Process(target=run_follow_ups, args=(database_url, api_url), daemon=True)
        if args.follow_ups == "worker":
            worker.start()
        try:
            wait_for_http(f"http://127.0.0.1:{port}/healthz", timeout=60)
            rows = run_load(port, database_url, response_url, args)
        finally:
            server.terminate()
            if worker.is_alive():
                worker.terminate()
            stop.set()
            server.join(10)
            fake.join(10)
    print(
        f"{args.concurrency} concurrent requests × {args.rounds} rounds "
        f"(after {args.warmup} warm-up rounds), SQLite, one web process, "
        f"follow-ups in the {args.follow_ups}\n"
    )
    print("| request | n | p50 ms | p95 ms | p99 ms | max ms |\n|---|---|---|---|---|---|")
    for name, latencies in rows:
        print(summary(name, latencies))


def run_load(
    port: int, database_url: str, response_url: str, args: argparse.Namespace
) -> list[tuple[str, list[float]]]:
    """`help` (an ack and nothing after it), then rollbacks (leaving a request), then clicks."""

    def help_command(n: int) -> tuple[str, str]:
        return slash_command("help", user=f"UREQ{n}", response_url=response_url)

    def rollback(n: int) -> tuple[str, str]:
        return slash_command(f"rollback {MODEL}", user=f"UREQ{n}", response_url=response_url)

    helps = measure(port, help_command, args)
    rollbacks = measure(port, rollback, args)
    request_id = _pending_request(database_url)
    users = itertools.count()

    def approve(n: int) -> tuple[str, str]:
        user = f"U{next(users) % 5_000:05d}"
        return block_action(
            action_id=ActionId.APPROVE, value=str(request_id), user=user, response_url=response_url
        )

    clicks = measure(port, approve, args)
    return [
        ("slash command `/rollbot help` (answered in the ack)", helps),
        (f"slash command `/rollbot rollback {MODEL}`", rollbacks),
        ("button click Approve", clicks),
    ]


def _pending_request(database_url: str, timeout: float = 60) -> int:
    """The newest pending approval request, once the rollbacks' follow-up work made one."""
    from sqlmodel import Session, col, select

    from bot.store.models import ApprovalRequest

    engine = make_engine(database_url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with Session(engine) as session:
            request = session.exec(
                select(ApprovalRequest)
                .where(ApprovalRequest.status == "pending")
                .order_by(col(ApprovalRequest.id).desc())
            ).first()
        if request is not None and request.id is not None:
            return int(request.id)
        time.sleep(0.5)
    raise RuntimeError("no pending approval request to click on")


if __name__ == "__main__":
    main()
