"""Every action and callback id Rollbot's Slack messages and shortcuts use, in one place."""

from __future__ import annotations

from enum import StrEnum


class ActionId(StrEnum):
    """Buttons on Rollbot's messages."""

    APPROVE = "rollbot_approve"
    REJECT = "rollbot_reject"


class CallbackId(StrEnum):
    """Shortcuts declared in manifest.yaml."""

    ADD_TO_TIMELINE = "rollbot_add_to_timeline"


class BlockId(StrEnum):
    """Blocks that listeners or tests look up."""

    DECISION = "decision"
    HEADLINE = "headline"
