"""A private PostgreSQL cluster for the test suite: initdb in a temp dir, on a free port."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg


def find_pg_bin() -> Path | None:
    """The directory holding initdb and postgres, if PostgreSQL is installed."""
    if env := os.environ.get("PG_BIN"):
        return Path(env)
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), reverse=True)
    return candidates[0].parent if candidates else None


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PostgresCluster:
    """A running throwaway cluster; ``url(db)`` gives a SQLAlchemy URL."""

    port: int
    data_dir: Path
    process: subprocess.Popen[bytes]
    root: Path

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def admin_execute(self, sql: str) -> None:
        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True
        ) as connection:
            connection.execute(sql)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.root, ignore_errors=True)


def _as_postgres_user(command: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root; the Debian package provides a postgres user.
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def start_cluster(pg_bin: Path, *, deadline_seconds: float = 60) -> PostgresCluster:
    """initdb and start a cluster tuned for tests (no fsync), waiting until it accepts."""
    root = Path(tempfile.mkdtemp(prefix="rollbot-pg-"))
    data_dir = root / "data"
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    subprocess.run(
        _as_postgres_user(
            [
                str(pg_bin / "initdb"),
                "-D",
                str(data_dir),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
            ]
        ),
        check=True,
        capture_output=True,
    )
    port = free_port()
    process = subprocess.Popen(
        _as_postgres_user(
            [
                str(pg_bin / "postgres"),
                "-D",
                str(data_dir),
                "-p",
                str(port),
                "-h",
                "127.0.0.1",
                "-k",
                str(root),
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=200",
            ]
        ),
        stdout=subprocess.DEVNULL,
        stderr=(root / "postgres.log").open("wb"),
    )
    cluster = PostgresCluster(port=port, data_dir=data_dir, process=process, root=root)
    until = time.monotonic() + deadline_seconds
    while True:
        try:
            cluster.admin_execute("SELECT 1")
            return cluster
        except psycopg.OperationalError:
            if process.poll() is not None or time.monotonic() > until:
                log = (root / "postgres.log").read_text(errors="replace")[-2000:]
                cluster.stop()
                raise RuntimeError(f"PostgreSQL did not start: {log}") from None
            time.sleep(0.2)
