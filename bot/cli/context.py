"""What every command needs: settings, the validated configuration and a database engine."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError

from bot.config import RollbotConfig, Settings, load_config
from bot.errors import ConfigError, validation_reason
from bot.store import make_engine, session_scope
from bot.telemetry import configure_logging

SUPPORTED_DATABASES = (
    "SQLite (sqlite:///PATH) and PostgreSQL (postgresql://USER:PASSWORD@HOST/NAME)"
)


@dataclass(frozen=True)
class Runtime:
    """The loaded process context."""

    settings: Settings
    config: RollbotConfig
    engine: Engine


def load_runtime(*, with_config: bool = True) -> Runtime:
    """Load settings and configuration (raising ConfigError before anything starts)."""
    settings = load_settings()
    config = load_config(settings.rollbot_config) if with_config else RollbotConfig()
    configure_logging()
    engine = database_engine(settings.database_url)
    return Runtime(settings=settings, config=config, engine=engine)


def database_engine(url: str) -> Engine:
    """An engine for DATABASE_URL, or a ConfigError naming it and what is wrong with it."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"DATABASE_URL: {exc}") from None
    backend = parsed.get_backend_name()
    # Refused up front: another dialect whose driver happens to be installed would get as
    # far as the first migration.
    if backend not in ("sqlite", "postgresql", "postgres"):
        raise ConfigError(
            f"DATABASE_URL: {backend} is not supported: Rollbot runs on {SUPPORTED_DATABASES}"
        )
    if backend == "sqlite" and not parsed.query.get("uri"):
        _check_sqlite_file(parsed.database)
    try:
        return make_engine(url)
    except (ArgumentError, ImportError) as exc:
        raise ConfigError(f"DATABASE_URL: {exc}") from None


def _check_sqlite_file(database: str | None) -> None:
    # SQLite itself only says "unable to open database file", without the file's name.
    if not database or database == ":memory:":
        return
    path = Path(database)
    if path.is_dir():
        raise ConfigError(f"DATABASE_URL: {path}: is a directory, not a database file")
    if not path.parent.is_dir():
        raise ConfigError(f"DATABASE_URL: {path}: directory {path.parent} does not exist")


def load_settings() -> Settings:
    """The environment's settings, or a ConfigError naming each bad variable."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']).upper()}: {validation_reason(error)}"
            for error in exc.errors()
        )
        raise ConfigError(f"environment: {problems}") from None


def import_demo_histories(runtime: Runtime) -> None:
    """Seed the serving history of models on a file-backed (demo) registry that Rollbot has
    never recorded, from the registry file's ``history`` (what ``examples/local.yaml`` ships).

    ``web`` and ``worker`` both do it when they start; the one that comes second finds the
    history there (or loses the race on the one-open-record index) and leaves it alone.
    """
    from bot.safe_versions import import_history
    from bot.wiring import seed_history

    for model in runtime.config.models:
        entries = seed_history(runtime.config, runtime.settings, model)
        if not entries:
            continue
        try:
            with session_scope(runtime.engine) as session:
                import_history(session, model=model, entries=entries)
        except IntegrityError:
            continue


def ensure_schema(runtime: Runtime) -> None:
    """A fresh SQLite file gets its tables (demos start in one command); any other
    unmigrated database is an error that says how to fix it."""
    from sqlalchemy import inspect

    from bot.errors import RollbotError
    from bot.store import migrate

    if inspect(runtime.engine).has_table("alembic_version"):
        return
    if runtime.engine.dialect.name != "sqlite":
        raise RollbotError("the database has no tables yet: run 'rollbot db upgrade' first")
    migrate.upgrade(runtime.settings.database_url)
