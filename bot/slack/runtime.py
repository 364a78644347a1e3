"""Build the Slack surface for a running process, in HTTP mode or Socket Mode."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_sdk import WebClient
from sqlalchemy.engine import Engine

from bot.config.models import RollbotConfig
from bot.config.settings import Settings
from bot.errors import ConfigError
from bot.proposals import default_tools
from bot.slack.app import RollbotSlackApp, create_slack_app
from bot.slack.follow_ups import FollowUpRunner
from bot.slack.notifier import SlackNotifier
from bot.slack.surface import Surface
from bot.slack.usergroups import UsergroupDirectory

if TYPE_CHECKING:
    from bot.cli.context import Runtime
    from bot.worker.main import PeriodicJob


def web_client(settings: Settings) -> WebClient:
    """A Web API client for the bot token, at ``SLACK_API_URL``."""
    return WebClient(token=settings.slack_bot_token, base_url=settings.slack_api_url, timeout=10)


def slack_notifier(settings: Settings, config: RollbotConfig, engine: Engine) -> SlackNotifier:
    """The Slack notifier for processes that post but take no requests (the worker)."""
    return SlackNotifier(web_client(settings), engine=engine, config=config)


def slack_surface(
    settings: Settings, config: RollbotConfig, engine: Engine, client: WebClient
) -> Surface:
    """What the listeners and follow-ups work with, over the bot token's Web API client."""
    directory = UsergroupDirectory(client)
    return Surface(
        engine=engine,
        config=config,
        notifier=SlackNotifier(client, engine=engine, config=config, directory=directory),
        members_of=directory,
        tools_factory=lambda: default_tools(config, settings),
    )


def slack_app_for(
    settings: Settings, config: RollbotConfig, engine: Engine
) -> RollbotSlackApp | None:
    """The bolt App, or None when no bot token is configured (Slack is then off)."""
    if not settings.slack_bot_token:
        return None
    socket_mode = bool(settings.slack_app_token)
    if not socket_mode and not settings.slack_signing_secret:
        # Half a Slack configuration is a mistake to stop on, not a mode to run in quietly.
        raise ConfigError(
            "SLACK_BOT_TOKEN is set but SLACK_SIGNING_SECRET is not: HTTP mode needs both "
            "(or set SLACK_APP_TOKEN for Socket Mode)"
        )
    client = web_client(settings)
    return create_slack_app(
        slack_surface(settings, config, engine, client),
        client=client,
        signing_secret=settings.slack_signing_secret,
        socket_mode=socket_mode,
        run_follow_ups=config.slack.follow_ups == "web",
    )


def slack_jobs(runtime: Runtime) -> list[PeriodicJob]:
    """The worker's share of Slack: follow-ups web processes left (or died holding)."""
    from bot.worker.main import PeriodicJob

    settings = runtime.settings
    if not settings.slack_bot_token:
        return []
    client = web_client(settings)
    runner = FollowUpRunner(slack_surface(settings, runtime.config, runtime.engine, client), client)

    def run_follow_ups() -> None:
        runner.run_pending()

    return [PeriodicJob(name="slack-follow-ups", interval=timedelta(seconds=1), run=run_follow_ups)]


def connect_socket_mode(app: RollbotSlackApp, app_token: str) -> SocketModeHandler:
    """Open the Socket Mode connection in the background (no public URL needed)."""
    handler = SocketModeHandler(app, app_token, web_client=app.client)
    handler.connect()
    return handler
