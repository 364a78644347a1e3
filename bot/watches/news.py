"""Telling people what a watch decided, after the commit: best effort, with a chart.

The database and the timeline are the record; Slack is the news, so a failure here is
logged and never undoes a verdict.
"""

from __future__ import annotations

import logging

from bot.notify import Notifier
from bot.watches.flows import DetectionOutcome
from bot.watches.judging import Judgement
from bot.watches.recovery import RecoveryOutcome

log = logging.getLogger(__name__)


def tell_degraded(
    notifier: Notifier,
    *,
    model: str,
    explanation: str,
    detection: DetectionOutcome,
    judgement: Judgement,
) -> None:
    """The incident (when new), the evidence with its chart, and the proposal, if any."""
    summary = f"*{model}* degraded: {explanation}"
    if detection.no_proposal_reason:
        summary += f"\nNo rollback proposed: {detection.no_proposal_reason}"
    try:
        if detection.opened:
            notifier.incident_opened(incident_id=detection.incident_id)
        notifier.evidence_posted(
            incident_id=detection.incident_id,
            summary=summary,
            chart_png=_evidence_chart(judgement),
            filename=f"{model}-evidence.png",
        )
        if detection.request_id is not None:
            notifier.proposal_created(request_id=detection.request_id)
    except Exception:
        log.exception("notifying about %s failed", model)


def tell_recovery(notifier: Notifier, outcome: RecoveryOutcome, judgement: Judgement) -> None:
    """The verdict on the rollback, with its chart, and the headline (severity) refreshed."""
    try:
        notifier.evidence_posted(
            incident_id=outcome.incident_id,
            summary=outcome.summary,
            chart_png=_evidence_chart(judgement),
            filename=f"{judgement.target.model}-after-rollback.png",
        )
        notifier.incident_updated(incident_id=outcome.incident_id)
    except Exception:
        log.exception("notifying about %s after its rollback failed", judgement.target.model)


def _evidence_chart(judgement: Judgement) -> bytes | None:
    """The chart, or None: the numbers are posted even when drawing fails."""
    if judgement.samples is None:
        return None
    from bot.watches.chart import render_evidence_chart

    try:
        return render_evidence_chart(judgement.target, judgement.decision, judgement.samples)
    except Exception:
        log.exception("drawing the evidence chart of %s failed", judgement.target.model)
        return None
