"""Process settings from the environment (secrets live here, never in the YAML file)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# The ports a process may listen on: PORT, and the --port and --metrics-port options.
MIN_PORT = 1
MAX_PORT = 65535


class Settings(BaseSettings):
    """The environment variables of DESIGN.md."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", case_sensitive=False)

    database_url: str = Field(default="sqlite:///rollbot.db")
    rollbot_config: str = Field(default="rollbot.yaml")
    port: int = Field(default=3000, ge=MIN_PORT, le=MAX_PORT)
    slack_bot_token: str | None = None
    slack_signing_secret: str | None = None
    slack_app_token: str | None = None
    slack_api_url: str = "https://slack.com/api/"
    prometheus_url: str | None = None
    rollbot_web_token: str | None = None
    rollbot_alertmanager_token: str | None = None
