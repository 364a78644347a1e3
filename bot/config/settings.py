"""Process settings from the environment (secrets live here, never in the YAML file)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """The environment variables of DESIGN.md."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", case_sensitive=False)

    database_url: str = Field(default="sqlite:///rollbot.db")
    rollbot_config: str = Field(default="rollbot.yaml")
    port: int = Field(default=3000, ge=1, le=65535)
    slack_bot_token: str | None = None
    slack_signing_secret: str | None = None
    slack_app_token: str | None = None
    slack_api_url: str = "https://slack.com/api/"
    prometheus_url: str | None = None
    rollbot_web_token: str | None = None
    rollbot_alertmanager_token: str | None = None
