"""Alembic, driven from code: the migrations ship with the package and run on both backends."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

from bot.store.db import normalize_url

_PACKAGE_ROOT = Path(__file__).resolve().parents[1]


def migrations_dir() -> Path:
    """The migrations folder: shipped inside the wheel, or the source tree's ``migrations/``."""
    for candidate in (
        _PACKAGE_ROOT / "_shipped" / "migrations",
        _PACKAGE_ROOT.parent / "migrations",
    ):
        if (candidate / "env.py").is_file():
            return candidate
    raise FileNotFoundError("Rollbot's migrations folder is missing from this installation")


def alembic_config(url: str) -> Config:
    """An Alembic configuration for the given database URL."""
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    # Alembic's ini interpolation treats % specially; URLs may contain escaped characters.
    config.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Apply migrations up to ``revision``."""
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    """Revert migrations down to ``revision`` (``base`` for an empty database)."""
    command.downgrade(alembic_config(url), revision)


def check(url: str) -> None:
    """Raise when the tables differ from the latest migration (autogenerate would write one)."""
    command.check(alembic_config(url))


@cache
def head_revision() -> str | None:
    """The newest revision shipped."""
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def revisions() -> list[str]:
    """Every revision shipped, oldest first."""
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return [script_revision.revision for script_revision in reversed(list(script.walk_revisions()))]


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None for a database never migrated)."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
