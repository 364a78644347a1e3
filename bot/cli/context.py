"""What every command needs: settings, the validated configuration and a database engine."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine

from bot.config import RollbotConfig, Settings, load_config
from bot.store import make_engine
from bot.telemetry import configure_logging


@dataclass(frozen=True)
class Runtime:
    """The loaded process context."""

    settings: Settings
    config: RollbotConfig
    engine: Engine


def load_runtime(*, with_config: bool = True) -> Runtime:
    """Load settings and configuration (raising ConfigError before anything starts)."""
    settings = Settings()
    config = load_config(settings.rollbot_config) if with_config else RollbotConfig()
    configure_logging()
    return Runtime(settings=settings, config=config, engine=make_engine(settings.database_url))


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
