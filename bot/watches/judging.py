"""The pure part of a watch evaluation: samples and remembered state in, a verdict out.

The live worker and the replay-equivalence tests call the same :func:`judge`. Because it
touches neither the database nor the network, a large cycle runs it in worker processes.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing
import os
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from bot.detection.detector import detect
from bot.detection.evidence import Decision, DetectionState
from bot.detection.watch_state import WatchPolicy, WatchState, WatchStep
from bot.watches.reader import WatchSamples
from bot.watches.targets import WatchTarget

log = logging.getLogger(__name__)

# Below this many models in a chunk, shipping it to a worker process costs more than it saves.
PARALLEL_MIN_MODELS = 50
# On 2 cores worker processes made a 10,000-model cycle slower (40 s vs 37 s, measured in
# bench/watch_eval.py: the reading, Prometheus and the database need the cores too).
PARALLEL_MIN_CORES = 4
# Chunks judged at once in workers; bounds how many read samples wait in memory.
_IN_FLIGHT_PER_WORKER = 2

Work = tuple[WatchTarget, WatchSamples | None, WatchState]
# Detector failures whose traceback this process has logged.
_FAILURES_LOGGED: set[str] = set()


@dataclass(frozen=True)
class Judgement:
    """The detector's verdict on one model and what the watch makes of it."""

    target: WatchTarget
    decision: Decision
    baseline_mode: str
    step: WatchStep
    # The end of the newest complete step judged (unix seconds).
    through: float
    # Kept only when proposing, for the evidence chart; others would only cost memory.
    samples: WatchSamples | None = None


def judge(
    target: WatchTarget, samples: WatchSamples | None, state: WatchState, *, now: float
) -> Judgement:
    """Judge one model at ``now`` and take the verdict into its watch state."""
    if samples is None:
        # No earlier version to compare with: say so rather than guess.
        note = (
            f"no earlier version of {target.model} without an incident to compare "
            f"{target.candidate_version} with"
        )
        decision = Decision(DetectionState.INCONCLUSIVE, now, note=note)
        mode, through = "none", now
    else:
        decision = detect(
            baseline=samples.baseline,
            candidate=samples.candidate,
            rules=target.watch.rules(),
            now=samples.now,
            min_sustain_seconds=target.watch.sustain.total_seconds(),
        )
        mode, through = samples.baseline_mode, samples.now
        if missing := _missing_versions(target, samples):
            decision = replace(decision, note=missing)
    policy = WatchPolicy(
        confirmations=target.watch.confirmations,
        cooldown_seconds=target.watch.cooldown.total_seconds(),
        proposes=not target.checks_recovery,  # its open incident is verified or escalated
    )
    step = state.observe(decision.state, now=decision.evaluated_at, policy=policy)
    return Judgement(target, decision, mode, step, through, samples if step.propose else None)


def _missing_versions(target: WatchTarget, samples: WatchSamples) -> str:
    """Words for versions the answer lacks while Prometheus has others of the model."""
    wanted = [target.candidate_version, target.baseline_version or ""]
    lacking = [v for v in dict.fromkeys(wanted) if v and v not in samples.versions_seen]
    if not lacking or not samples.versions_seen:
        return ""
    versions = ", ".join(sorted(samples.versions_seen))
    return (
        f"Prometheus has no samples of version {' or '.join(lacking)} of {target.metrics_name} "
        f"but has {versions}: check the watch's version_label and that your metrics label "
        "versions as the registry names them"
    )


def remembered(stored: dict[str, Any], target: WatchTarget) -> WatchState:
    """The stored state; a new deploy starts counting afresh but keeps the cooldown."""
    state = WatchState.from_dict(stored)
    deployed_at = target.deployed_at.timestamp()
    if stored.get("candidate_version") != target.candidate_version:
        state = WatchState(
            last_proposal_at=state.last_proposal_at, last_rollback_at=state.last_rollback_at
        )
    if target.is_rollback and (state.last_rollback_at or 0) < deployed_at:
        state = state.rolled_back(now=deployed_at)
    return state


def judge_all(work: Sequence[Work], now: float) -> list[Judgement]:
    """Judge a chunk in this process (also the body a worker process runs)."""
    return [_judge_alone(target, samples, state, now=now) for target, samples, state in work]


def _judge_alone(
    target: WatchTarget, samples: WatchSamples | None, state: WatchState, *, now: float
) -> Judgement:
    """One model's verdict; samples the detector cannot judge cost that model alone.

    Such a model is inconclusive with the reason, and its watch state is kept as it was.
    """
    try:
        return judge(target, samples, state, now=now)
    except Exception as exc:  # a defect or data no test foresaw: never blind the other models
        note = f"the detector could not judge these samples ({type(exc).__name__}: {exc})"
        # Each verdict carries the note; the traceback is logged once per error, not per
        # model and step.
        if note not in _FAILURES_LOGGED:
            _FAILURES_LOGGED.add(note)
            log.exception("judging %s failed; not logged again for this error", target.model)
        through = samples.now if samples is not None else now
        decision = Decision(DetectionState.INCONCLUSIVE, through, note=note)
        step = WatchStep(state=state, propose=False, reason=note)
        return Judgement(target, decision, "none", step, through)


def judge_chunks(chunks: Iterable[Sequence[Work]], *, now: float) -> Iterator[Judgement]:
    """Judge chunk after chunk; large ones in worker processes while the next is read."""
    in_flight: deque[Future[list[Judgement]]] = deque()
    limit = _IN_FLIGHT_PER_WORKER * (os.cpu_count() or 1)
    for chunk in chunks:
        pool = _pool() if len(chunk) >= PARALLEL_MIN_MODELS else None
        if pool is None:
            yield from judge_all(chunk, now)
            continue
        in_flight.append(pool.submit(judge_all, chunk, now))
        while len(in_flight) >= limit:
            yield from in_flight.popleft().result()
    while in_flight:
        yield from in_flight.popleft().result()


_POOL: ProcessPoolExecutor | None = None


def _pool() -> ProcessPoolExecutor | None:
    """One pool per process, started on first need; none on small machines."""
    global _POOL
    if (os.cpu_count() or 1) < PARALLEL_MIN_CORES:
        return None
    if _POOL is None:
        # Spawned, not forked: the worker process holds database connections and threads.
        _POOL = ProcessPoolExecutor(mp_context=multiprocessing.get_context("spawn"))
        atexit.register(_POOL.shutdown, cancel_futures=True)
    return _POOL
