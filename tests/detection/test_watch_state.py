"""Watch state: proposals only on degraded verdicts, then a cooldown."""

from __future__ import annotations

import json

from bot.detection.evidence import DetectionState
from bot.detection.watch_state import WatchPolicy, WatchState

DEGRADED, SUSPECT, HEALTHY = DetectionState.DEGRADED, DetectionState.SUSPECT, DetectionState.HEALTHY
POLICY = WatchPolicy(confirmations=1, cooldown_seconds=3600)


def test_degraded_proposes_and_suspect_does_not() -> None:
    assert WatchState().observe(SUSPECT, now=0, policy=POLICY).propose is False
    assert WatchState().observe(DetectionState.INCONCLUSIVE, now=0, policy=POLICY).propose is False
    step = WatchState().observe(DEGRADED, now=100, policy=POLICY)
    assert step.propose is True
    assert step.state.last_proposal_at == 100


def test_no_second_proposal_until_the_cooldown_has_passed() -> None:
    state = WatchState().observe(DEGRADED, now=0, policy=POLICY).state
    during = state.observe(DEGRADED, now=3599, policy=POLICY)
    assert during.propose is False
    assert "cooling down" in during.reason
    assert during.state.observe(DEGRADED, now=3600, policy=POLICY).propose is True


def test_a_rollback_restarts_the_cooldown() -> None:
    state = WatchState().observe(DEGRADED, now=0, policy=POLICY).state.rolled_back(now=3000)
    assert state.observe(DEGRADED, now=3700, policy=POLICY).propose is False
    assert state.observe(DEGRADED, now=6600, policy=POLICY).propose is True


def test_confirmations_need_consecutive_degraded_verdicts() -> None:
    policy = WatchPolicy(confirmations=2, cooldown_seconds=0)
    first = WatchState().observe(DEGRADED, now=0, policy=policy)
    reset = first.state.observe(HEALTHY, now=60, policy=policy)
    again = reset.state.observe(DEGRADED, now=120, policy=policy)
    assert (first.propose, again.propose) == (False, False)
    assert again.state.observe(DEGRADED, now=180, policy=policy).propose is True


def test_state_round_trips_through_plain_values() -> None:
    state = WatchState().observe(DEGRADED, now=42.5, policy=POLICY).state.rolled_back(now=99)
    stored = json.loads(json.dumps(state.to_dict()))
    assert WatchState.from_dict(stored) == state


def test_a_failed_proposal_is_tried_again_after_a_pause_not_the_cooldown() -> None:
    step = WatchState().observe(DEGRADED, now=0, policy=POLICY)
    failed = step.state.proposal_failed(now=0, retry_seconds=300)

    waiting = failed.observe(DEGRADED, now=299, policy=POLICY)
    assert waiting.propose is False and "trying again in 1s" in waiting.reason
    retried = waiting.state.observe(DEGRADED, now=300, policy=POLICY)
    assert retried.propose is True and retried.state.retry_at is None
    assert WatchState.from_dict(json.loads(json.dumps(failed.to_dict()))) == failed
