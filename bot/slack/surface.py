"""What every listener needs, built once per process, and the shape of a reply."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Engine

from bot.approvals.policy import MembersOf
from bot.config.models import RollbotConfig
from bot.notify import Notifier
from bot.proposals import RollbackTools


@dataclass(frozen=True)
class Caller:
    """Who typed or clicked, and where."""

    user: str
    channel: str | None


@dataclass(frozen=True)
class Reply:
    """What a command says back; ephemeral unless ``in_channel``."""

    text: str
    blocks: list[dict[str, Any]] | None = None
    in_channel: bool = False


@dataclass
class Surface:
    """The database, configuration and collaborators behind the Slack listeners.

    ``tools_factory`` is called on first use: loading runbooks and building integrations
    must not slow down (or break) starting the web process.
    """

    engine: Engine
    config: RollbotConfig
    notifier: Notifier
    members_of: MembersOf
    tools_factory: Callable[[], RollbackTools]
    _tools: RollbackTools | None = field(default=None, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    @property
    def tools(self) -> RollbackTools:
        """The rollback tools, built once."""
        with self._lock:
            if self._tools is None:
                self._tools = self.tools_factory()
            return self._tools

    @property
    def command(self) -> str:
        """The configured slash command (``/rollbot``)."""
        return self.config.slack.command
