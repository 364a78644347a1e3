"""What a watch remembers between evaluations: hysteresis and the cooldown after a rollback.

Pure and tiny on purpose, so the worker can store it as plain values and a replay can use
exactly the same rules as the live watch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from bot.detection.evidence import DetectionState

# After a proposal could not be made (the registry or deployer failed), the watch tries again
# this much later rather than at every evaluation or only after the whole cooldown.
PROPOSAL_RETRY_SECONDS = 300.0


@dataclass(frozen=True)
class WatchPolicy:
    """How eagerly a watch turns a degraded verdict into a rollback proposal."""

    # Consecutive degraded evaluations needed; the detector already demands a sustained
    # excess, so one is enough unless a team wants extra caution.
    confirmations: int = 1
    # After a proposal or a rollback, stay quiet this long so versions do not flip-flop.
    cooldown_seconds: float = 3600.0
    # Off while a watch checks a rollback: a version still degraded against its own past
    # after being restored is no case for another rollback, but for a person.
    proposes: bool = True


@dataclass(frozen=True)
class WatchStep:
    """The outcome of one evaluation: the new state and whether to propose a rollback."""

    state: WatchState
    propose: bool
    reason: str


@dataclass(frozen=True)
class WatchState:
    """Per-model memory of a watch."""

    consecutive_degraded: int = 0
    last_proposal_at: float | None = None
    last_rollback_at: float | None = None
    retry_at: float | None = None

    def quiet_until(self, policy: WatchPolicy) -> float | None:
        """When the cooldown ends, or None when there is none."""
        moments = [m for m in (self.last_proposal_at, self.last_rollback_at) if m is not None]
        return max(moments) + policy.cooldown_seconds if moments else None

    def observe(self, state: DetectionState, *, now: float, policy: WatchPolicy) -> WatchStep:
        """Take one detector verdict; propose only on enough consecutive degraded verdicts."""
        if state != DetectionState.DEGRADED:
            cleared = replace(self, consecutive_degraded=0, retry_at=None)
            return WatchStep(cleared, False, f"{state.value}: nothing to propose")
        counted = replace(self, consecutive_degraded=self.consecutive_degraded + 1)
        if counted.consecutive_degraded < policy.confirmations:
            reason = (
                f"degraded {counted.consecutive_degraded} of {policy.confirmations} "
                "evaluations needed"
            )
            return WatchStep(counted, False, reason)
        if not policy.proposes:
            return WatchStep(counted, False, "degraded after the rollback: escalate instead")
        quiet_until = self.quiet_until(policy)
        if quiet_until is not None and now < quiet_until:
            reason = f"degraded, but cooling down for {quiet_until - now:.0f}s more"
            return WatchStep(counted, False, reason)
        if self.retry_at is not None and now < self.retry_at:
            reason = (
                f"degraded; the last proposal could not be made, trying again in "
                f"{self.retry_at - now:.0f}s"
            )
            return WatchStep(counted, False, reason)
        proposed = replace(counted, last_proposal_at=now, retry_at=None)
        return WatchStep(proposed, True, "degraded: propose a rollback")

    def proposal_failed(
        self, *, now: float, retry_seconds: float = PROPOSAL_RETRY_SECONDS
    ) -> WatchState:
        """The proposal this state was about to make failed: no cooldown, a retry later.

        Only a proposal outside any cooldown is ever made, so forgetting its time loses
        nothing.
        """
        return replace(self, last_proposal_at=None, retry_at=now + retry_seconds)

    def rolled_back(self, *, now: float) -> WatchState:
        """Record a rollback; the cooldown starts again from here."""
        return replace(self, consecutive_degraded=0, last_rollback_at=now)

    def to_dict(self) -> dict[str, Any]:
        """Plain values for storage."""
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> WatchState:
        """Rebuild from :meth:`to_dict` output; unknown keys are ignored."""
        return cls(
            consecutive_degraded=int(raw.get("consecutive_degraded", 0)),
            last_proposal_at=_optional_float(raw.get("last_proposal_at")),
            last_rollback_at=_optional_float(raw.get("last_rollback_at")),
            retry_at=_optional_float(raw.get("retry_at")),
        )


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)
