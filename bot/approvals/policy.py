"""The approval policy as copied into each request, and the checks a click must pass.

The checks are pure functions over plain values, so the server can run them at every click
and the runbook engine again right before it executes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bot.config.durations import format_duration
from bot.config.models import ApprovalPolicy
from bot.errors import PolicyViolation, RollbotError

MembersOf = Callable[[str], frozenset[str]]
"""Resolves an approver group (a Slack user group id) to the user ids in it."""


class ApproverLookupFailed(RollbotError):
    """The approver groups could not be resolved (Slack down); nothing was decided."""


@dataclass(frozen=True)
class PolicySnapshot:
    """The policy a request was made under; later config changes do not touch it."""

    approvals: int
    approver_groups: tuple[str, ...]
    approvers: tuple[str, ...]
    allow_self_approval: bool
    expires_after: timedelta

    @classmethod
    def from_config(cls, policy: ApprovalPolicy) -> PolicySnapshot:
        """Copy a configured policy."""
        return cls(
            approvals=policy.approvals,
            approver_groups=tuple(policy.approver_groups),
            approvers=tuple(policy.approvers),
            allow_self_approval=policy.allow_self_approval,
            expires_after=policy.expires_after,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PolicySnapshot:
        """Read a snapshot stored on a request."""
        return cls(
            approvals=int(data["approvals"]),
            approver_groups=tuple(data.get("approver_groups", ())),
            approvers=tuple(data.get("approvers", ())),
            allow_self_approval=bool(data.get("allow_self_approval", False)),
            expires_after=timedelta(seconds=float(data.get("expires_after_seconds", 1800))),
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON stored on a request."""
        return {
            "approvals": self.approvals,
            "approver_groups": list(self.approver_groups),
            "approvers": list(self.approvers),
            "allow_self_approval": self.allow_self_approval,
            "expires_after_seconds": self.expires_after.total_seconds(),
        }

    def describe(self) -> str:
        """One line for the approval card."""
        who = [f"<!subteam^{group}>" for group in self.approver_groups]
        who += [f"<@{user}>" for user in self.approvers]
        self_rule = "" if self.allow_self_approval else "; requester cannot approve"
        return (
            f"{self.approvals} approval(s) from {', '.join(who) or 'anyone'}"
            f"{self_rule}; expires after {format_duration(self.expires_after)}"
        )


def is_approver(user: str, policy: PolicySnapshot, members_of: MembersOf) -> bool:
    """Whether the user may approve under the policy (no groups and no users: anyone may)."""
    if not policy.approver_groups and not policy.approvers:
        return True
    if user in policy.approvers:
        return True
    return any(user in members_of(group) for group in policy.approver_groups)


def check_approver(
    *, user: str, requested_by: str, policy: PolicySnapshot, members_of: MembersOf
) -> None:
    """Raise PolicyViolation when the user may not approve this request."""
    if user == requested_by and not policy.allow_self_approval:
        raise PolicyViolation("you asked for this rollback; someone else has to approve it")
    if not is_approver(user, policy, members_of):
        raise PolicyViolation(
            "you are not an approver for this rollback (" + policy.describe() + ")"
        )


def check_not_expired(*, expires_at: datetime, now: datetime) -> None:
    """Raise PolicyViolation when the request is past its expiry."""
    if now >= expires_at:
        raise PolicyViolation(
            f"this request expired at {expires_at:%Y-%m-%d %H:%M} UTC; propose the rollback again"
        )


def check_plan_unchanged(*, approved_hash: str, current_hash: str, model: str) -> None:
    """Raise PolicyViolation when the plan rendered now differs from the one proposed."""
    if approved_hash != current_hash:
        raise PolicyViolation(
            f"the plan changed since it was proposed (serving version, safe versions or "
            f"runbook); nothing was approved. Propose again: `rollback {model}`"
        )


def quorum_met(approvals: Iterable[str], policy: PolicySnapshot) -> bool:
    """Whether enough distinct people approved."""
    return len(set(approvals)) >= policy.approvals
