"""Who is in a Slack user group, via usergroups.users.list, cached for a short while.

The cache keeps approval clicks fast; it is short so that removing someone from an
approver group takes effect within a minute.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.approvals.policy import ApproverLookupFailed


class UsergroupDirectory:
    """Resolves user group ids to member ids; usable as the approvals' ``members_of``."""

    def __init__(
        self,
        client: WebClient,
        *,
        ttl_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._ttl = ttl_seconds
        self._clock = clock
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}
        self._lock = threading.Lock()

    def __call__(self, group: str) -> frozenset[str]:
        """The members of the group (user ids)."""
        try:
            return self._members(group)
        except SlackApiError as exc:
            raise ApproverLookupFailed(
                f"could not read Slack user group {group} ({exc.response.get('error')}); "
                "nothing was recorded"
            ) from exc
        except SlackClientError as exc:
            raise ApproverLookupFailed(
                f"could not reach Slack to read user group {group}; nothing was recorded"
            ) from exc

    def expand(self, ids: list[str]) -> tuple[list[str], dict[str, str]]:
        """User ids as given and user group ids (S…) replaced by their members, deduplicated;
        and the groups that could not be read, with why (the others are expanded anyway)."""
        users: dict[str, None] = {}
        unreadable: dict[str, str] = {}
        for entry in ids:
            if not entry.startswith("S"):
                users[entry] = None
                continue
            try:
                users.update(dict.fromkeys(self._members(entry)))
            except SlackApiError as exc:
                unreadable[entry] = str(exc.response.get("error"))
            except SlackClientError:
                unreadable[entry] = "Slack unreachable"
        return list(users), unreadable

    def _members(self, group: str) -> frozenset[str]:
        now = self._clock()
        with self._lock:
            cached = self._cache.get(group)
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        response = self._client.usergroups_users_list(usergroup=group)
        members = frozenset(str(user) for user in response.get("users") or [])
        with self._lock:
            self._cache[group] = (now, members)
        return members
