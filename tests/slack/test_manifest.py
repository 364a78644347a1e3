"""The app manifest declares what the code listens for."""

from __future__ import annotations

from pathlib import Path

import yaml

from bot.config.models import SlackConfig
from bot.slack.ids import CallbackId

MANIFEST = Path(__file__).resolve().parents[2] / "manifest.yaml"


def test_the_manifest_matches_the_listeners() -> None:
    manifest = yaml.safe_load(MANIFEST.read_text())
    features, settings = manifest["features"], manifest["settings"]

    assert [c["command"] for c in features["slash_commands"]] == [SlackConfig().command]
    assert [s["callback_id"] for s in features["shortcuts"]] == [CallbackId.ADD_TO_TIMELINE]
    assert settings["event_subscriptions"]["bot_events"] == ["reaction_added"]
    urls = [
        features["slash_commands"][0]["url"],
        settings["event_subscriptions"]["request_url"],
        settings["interactivity"]["request_url"],
    ]
    assert all(url.endswith("/slack/events") for url in urls)
    # Exactly what the Web API calls and events need: no more access than the app uses.
    assert sorted(manifest["oauth_config"]["scopes"]["bot"]) == [
        "channels:history",
        "channels:manage",
        "chat:write",
        "chat:write.public",
        "commands",
        "files:write",
        "groups:history",
        "reactions:read",
        "usergroups:read",
    ]
