"""What the domain tells people: a small `Notifier` protocol, implemented by the Slack edge.

Every method takes ids, not rows: a notifier reads the committed state itself, so callers
notify after their transaction commits and a notifier in another process sees the same
thing. Notifications are best effort; the database and the timeline are the record.
"""

from __future__ import annotations

from typing import Protocol

from bot.store.models import RunbookRun, StepRun


class Notifier(Protocol):
    """Tell the humans about incidents, proposals and runs."""

    def incident_opened(self, *, incident_id: int) -> None:
        """A new incident: open its channel, invite responders, post the headline."""
        ...

    def incident_updated(self, *, incident_id: int) -> None:
        """Status, severity, versions or run progress changed: refresh the headline."""
        ...

    def proposal_created(self, *, request_id: int) -> None:
        """A rollback awaits approval: post the approval card."""
        ...

    def proposal_decided(self, *, request_id: int) -> None:
        """Approved, rejected, expired or superseded: update the card in place."""
        ...

    def run_progress(self, *, run_id: int, message: str) -> None:
        """A runbook step started or finished, or the run ended."""
        ...

    def evidence_posted(
        self,
        *,
        incident_id: int,
        summary: str,
        chart_png: bytes | None = None,
        filename: str = "evidence.png",
    ) -> None:
        """Numbers (and optionally a chart) behind a detection."""
        ...

    def reminder_posted(self, *, incident_id: int, text: str, mentions: tuple[str, ...]) -> None:
        """Something still waits on people: say so, mentioning them (user or group ids)."""
        ...

    def documents_posted(
        self, *, incident_id: int, summary: str, files: list[tuple[str, bytes]]
    ) -> None:
        """A written document (the postmortem draft) and its attachments, as files."""
        ...


class NullNotifier:
    """Tells nobody: for the CLI, drills and tests that only look at the database."""

    def incident_opened(self, *, incident_id: int) -> None:
        """Do nothing."""

    def incident_updated(self, *, incident_id: int) -> None:
        """Do nothing."""

    def proposal_created(self, *, request_id: int) -> None:
        """Do nothing."""

    def proposal_decided(self, *, request_id: int) -> None:
        """Do nothing."""

    def run_progress(self, *, run_id: int, message: str) -> None:
        """Do nothing."""

    def evidence_posted(
        self,
        *,
        incident_id: int,
        summary: str,
        chart_png: bytes | None = None,
        filename: str = "evidence.png",
    ) -> None:
        """Do nothing."""

    def reminder_posted(self, *, incident_id: int, text: str, mentions: tuple[str, ...]) -> None:
        """Do nothing."""

    def documents_posted(
        self, *, incident_id: int, summary: str, files: list[tuple[str, bytes]]
    ) -> None:
        """Do nothing."""


class NotifyingRunObserver:
    """The runbook engine's RunObserver, telling a Notifier about each step and the end."""

    def __init__(self, notifier: Notifier) -> None:
        self._notifier = notifier

    def on_step_started(self, run: RunbookRun, step: StepRun) -> None:
        """A step began."""
        if run.id is not None:
            self._notifier.run_progress(
                run_id=run.id, message=f"▶️ Step {step.position + 1} `{step.name}` started"
            )

    def on_step_finished(self, run: RunbookRun, step: StepRun) -> None:
        """A step ended, well or not."""
        if run.id is None:
            return
        mark = "✅" if step.state == "succeeded" else "⚠️"
        error = f": {step.error}" if step.error else ""
        self._notifier.run_progress(
            run_id=run.id,
            message=f"{mark} Step {step.position + 1} `{step.name}` {step.state}{error}",
        )

    def on_run_finished(self, run: RunbookRun) -> None:
        """The run reached its end state."""
        if run.id is not None:
            error = f": {run.error}" if run.error else ""
            self._notifier.run_progress(run_id=run.id, message=f"Run #{run.id} {run.status}{error}")
