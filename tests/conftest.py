"""Shared fixtures: every database test runs on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from bot.store import make_engine, migrate
from tests.support.postgres import PostgresCluster, find_pg_bin, start_cluster
from tests.support.services import unavailable

BACKENDS = ["sqlite", "postgresql"]
_database_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PostgresCluster]:
    """One private PostgreSQL cluster for the whole run."""
    pg_bin = find_pg_bin()
    if pg_bin is None:
        unavailable("PostgreSQL binaries (initdb) not found; apt-get install postgresql")
    cluster = start_cluster(pg_bin)
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def pg_template(pg_cluster: PostgresCluster) -> str:
    """A migrated database that each test's database is copied from."""
    pg_cluster.admin_execute("CREATE DATABASE rollbot_template")
    migrate.upgrade(pg_cluster.url("rollbot_template"))
    return "rollbot_template"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file that each test's database is copied from."""
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    migrate.upgrade(f"sqlite:///{path}")
    return path


def new_empty_database(request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> str:
    """A URL of a new, never-migrated database on the backend."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'rollbot.db'}"
    cluster: PostgresCluster = request.getfixturevalue("pg_cluster")
    name = f"rollbot_test_{next(_database_numbers)}"
    cluster.admin_execute(f"CREATE DATABASE {name}")
    return cluster.url(name)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The database backend under test."""
    return str(request.param)


@pytest.fixture
def empty_database_url(request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> str:
    """A new database with no tables at all."""
    return new_empty_database(request, backend, tmp_path)


@pytest.fixture
def database_url(request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> str:
    """A new database migrated to head, on each backend in turn."""
    if backend == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        target = tmp_path / "rollbot.db"
        shutil.copyfile(template, target)
        return f"sqlite:///{target}"
    cluster: PostgresCluster = request.getfixturevalue("pg_cluster")
    template_name: str = request.getfixturevalue("pg_template")
    name = f"rollbot_test_{next(_database_numbers)}"
    cluster.admin_execute(f"CREATE DATABASE {name} TEMPLATE {template_name}")
    return cluster.url(name)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """An engine on a fresh migrated database."""
    engine = make_engine(database_url)
    yield engine
    engine.dispose()
