"""What every command needs: settings, the validated configuration and a database engine."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError
from sqlalchemy.engine import Engine
from sqlalchemy.exc import ArgumentError, IntegrityError

from bot.config import RollbotConfig, Settings, load_config
from bot.errors import ConfigError
from bot.store import make_engine, session_scope
from bot.telemetry import configure_logging


@dataclass(frozen=True)
class Runtime:
    """The loaded process context."""

    settings: Settings
    config: RollbotConfig
    engine: Engine


def load_runtime(*, with_config: bool = True) -> Runtime:
    """Load settings and configuration (raising ConfigError before anything starts)."""
    settings = _settings()
    config = load_config(settings.rollbot_config) if with_config else RollbotConfig()
    configure_logging()
    try:
        engine = make_engine(settings.database_url)
    except (ArgumentError, ImportError) as exc:
        raise ConfigError(f"DATABASE_URL: {exc}") from None
    return Runtime(settings=settings, config=config, engine=engine)


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']).upper()}: {error['msg']}"
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
