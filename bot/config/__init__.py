"""Configuration: environment settings and the YAML file."""

from bot.config.durations import Duration, format_duration, parse_duration
from bot.config.loader import load_config, parse_config
from bot.config.models import ApprovalPolicy, ModelConfig, RollbotConfig
from bot.config.settings import Settings

__all__ = [
    "ApprovalPolicy",
    "Duration",
    "ModelConfig",
    "RollbotConfig",
    "Settings",
    "format_duration",
    "load_config",
    "parse_config",
    "parse_duration",
]
