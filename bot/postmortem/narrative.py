"""The summary paragraph: what happened, in the order it happened, without assigning fault."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from bot.postmortem.facts import (
    ApprovalFact,
    EvidenceFact,
    ImpactFact,
    RunFact,
    VersionsFact,
)
from bot.postmortem.formatting import clock, count, duration, metric_value, unit_of


def summarize(
    *,
    title: str,
    model: str | None,
    times: Mapping[str, datetime | None],
    versions: VersionsFact,
    evidence: tuple[EvidenceFact, ...],
    approvals: tuple[ApprovalFact, ...],
    runs: tuple[RunFact, ...],
    impact: ImpactFact,
) -> str:
    """A few sentences a reader can take in before the details."""
    sentences = [
        _what(title, model, versions, evidence, times.get("degraded_at")),
        _detection(times),
        _proposal(approvals, times.get("approved_at")),
        _rollback(runs, times.get("mitigated_at")),
        _resolution(times),
        _impact(impact, versions),
    ]
    return " ".join(sentence for sentence in sentences if sentence)


def _what(
    title: str,
    model: str | None,
    versions: VersionsFact,
    evidence: tuple[EvidenceFact, ...],
    degraded_at: datetime | None,
) -> str:
    if model is None:
        return f"{title}."
    subject = f"Version {versions.degraded} of {model}" if versions.degraded else model
    since = f" from {clock(degraded_at)}" if degraded_at else ""
    deciding = [fact for fact in evidence if fact.state == "degraded"] or list(evidence)
    if not deciding:
        return f"{subject} was reported degraded{since}."
    fact = deciding[0]
    unit = unit_of(fact.metric)
    numbers = f"{fact.label} {metric_value(fact.candidate_value, unit)}"
    if fact.baseline_value is not None:
        numbers += f" against a baseline of {metric_value(fact.baseline_value, unit)}"
    if fact.limit_value is not None:
        numbers += f" and a limit of {metric_value(fact.limit_value, unit)}"
    return f"{subject} was degraded{since} ({numbers})."


def _detection(times: Mapping[str, datetime | None]) -> str:
    detected, degraded = times.get("detected_at"), times.get("degraded_at")
    if detected is None:
        return ""
    after = ""
    if degraded is not None and detected > degraded:
        after = f", {duration((detected - degraded).total_seconds())} after it began"
    return f"The incident was opened at {clock(detected)}{after}."


def _proposal(approvals: tuple[ApprovalFact, ...], approved_at: datetime | None) -> str:
    if not approvals:
        return "No rollback was proposed."
    last = approvals[-1]
    target = f"a rollback to version {last.to_version}"
    if approved_at is not None and last.status == "approved":
        return f"{target.capitalize()} was proposed and approved at {clock(approved_at)}."
    if last.status == "rejected":
        return f"{target.capitalize()} was proposed and not approved (rejected)."
    if last.status == "expired":
        return f"{target.capitalize()} was proposed; the request expired before enough approvals."
    return f"{target.capitalize()} was proposed (status: {last.status})."


def _rollback(runs: tuple[RunFact, ...], mitigated_at: datetime | None) -> str:
    real = [run for run in runs if not run.drill]
    if not real:
        if mitigated_at is not None:
            return f"Traffic was back on a safe version at {clock(mitigated_at)}."
        return "No rollback ran."
    run = real[-1]
    if run.status == "succeeded":
        back = f" by {clock(mitigated_at)}" if mitigated_at else ""
        return f"The {run.runbook} runbook moved traffic back to version {run.to_version}{back}."
    if run.status in ("pending", "running", "compensating"):
        return f"The {run.runbook} runbook was still {run.status} when this draft was written."
    failed = [step for step in run.steps if step.state == "failed"]
    where = f" at step '{failed[0].name}'" if failed else ""
    ended = "failed" if run.status == "failed" else f"was stopped ({run.status})"
    return (
        f"The {run.runbook} runbook run {ended}{where}; "
        f"traffic did not fully return to version {run.to_version} through it."
    )


def _resolution(times: Mapping[str, datetime | None]) -> str:
    resolved, detected = times.get("resolved_at"), times.get("detected_at")
    if resolved is None:
        return "The incident is still open."
    after = ""
    if detected is not None and resolved > detected:
        after = f", {duration((resolved - detected).total_seconds())} after detection"
    return f"It was resolved at {clock(resolved)}{after}."


def _impact(impact: ImpactFact, versions: VersionsFact) -> str:
    if impact.seconds is None:
        return ""
    span = duration(impact.seconds) + (" so far" if impact.ongoing else "")
    if impact.requests is None:
        return f"The impact lasted {span}."
    version = f"version {versions.degraded}" if versions.degraded else "the degraded version"
    text = f"Over {span} of impact, {version} served about {count(impact.requests)} requests"
    if impact.excess_errors is not None:
        text += f", about {count(impact.excess_errors)} more failing than at the baseline rate"
    elif impact.errors is not None:
        text += f", about {count(impact.errors)} of them failing"
    return text + "."
