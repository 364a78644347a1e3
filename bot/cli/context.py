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
