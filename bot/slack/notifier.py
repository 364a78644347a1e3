"""The Notifier that speaks Slack: incident channels, headlines, approval cards, run progress.

Notifications are best effort: a Slack outage is logged and never undoes or blocks the
domain change that was already committed (the timeline is the record).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select

from bot.approvals import service as approvals
from bot.approvals.policy import ApproverLookupFailed
from bot.config.models import RollbotConfig
from bot.incidents import channel as incident_channel
from bot.incidents import service as incidents
from bot.slack import blocks, channels
from bot.slack.usergroups import UsergroupDirectory
from bot.store import session_scope
from bot.store.models import Incident, RunbookRun, StepRun, StepState

log = logging.getLogger(__name__)
_Method = TypeVar("_Method", bound=Callable[..., None])


def best_effort(method: _Method) -> _Method:
    """Log Slack failures instead of raising: the database already holds the truth."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            method(*args, **kwargs)
        except (SlackApiError, SlackClientError, ApproverLookupFailed) as exc:
            log.warning("slack notification %s(%s) failed: %s", method.__name__, kwargs, exc)

    return wrapper  # type: ignore[return-value]


class SlackNotifier:
    """Posts and updates Rollbot's messages through the Slack Web API."""

    def __init__(
        self,
        client: WebClient,
        *,
        engine: Engine,
        config: RollbotConfig,
        directory: UsergroupDirectory | None = None,
    ) -> None:
        self._client = client
        self._engine = engine
        self._config = config
        self._directory = directory or UsergroupDirectory(client)

    @best_effort
    def incident_opened(self, *, incident_id: int) -> None:
        """Create the incident channel, invite responders and post the headline.

        Concurrent callers (a detection and a command for one incident) race for a claim on
        the channel; the loser waits for the winner's channel instead of creating another.
        """
        claim = channels.claim_channel(self._engine, incident_id=incident_id)
        if claim is None:
            channels.wait_for_channel(self._engine, incident_id=incident_id)
            return
        try:
            channel = self._open_channel(incident_id)
        except BaseException:
            channels.release_claim(self._engine, incident_id=incident_id, claim=claim)
            raise
        if self._config.slack.announce_channel:
            with session_scope(self._engine) as session:
                title = incidents.get(session, incident_id=incident_id).title
            self._client.chat_postMessage(
                channel=self._config.slack.announce_channel,
                text=f"Incident #{incident_id} opened: {title} in <#{channel}>",
            )

    def _open_channel(self, incident_id: int) -> str:
        with session_scope(self._engine) as session:
            incident = incidents.get(session, incident_id=incident_id)
            name = channels.channel_name(
                prefix=self._config.slack.channel_prefix,
                subject=incident.model or f"incident-{incident.id}",
                day=incident.created_at,
            )
            declared_by = incident.declared_by
            model = self._config.models.get(incident.model or "")
            headline = self._headline(session, incident)
        channel = channels.create_channel(self._client, name=name)
        people = [*self._config.slack.responders, *(model.owners if model else [])]
        if declared_by and declared_by.startswith(("U", "W")):  # W: Enterprise Grid users
            people.append(declared_by)
        refused = self._invite(channel, people)
        response = self._client.chat_postMessage(
            channel=channel, text=incident.title, blocks=headline
        )
        with session_scope(self._engine) as session:
            incident = incidents.get(session, incident_id=incident_id)
            incident_channel.attach_channel(
                session, incident=incident, channel_id=channel, headline_ts=response["ts"]
            )
            if refused:
                incident_channel.record_not_invited(session, incident=incident, refused=refused)
        return channel

    def _invite(self, channel: str, people: list[str]) -> dict[str, str]:
        """Invite whoever can be; those who could not, with why. Someone Slack refuses must
        not cost the channel: a retry would create another and leave this one orphaned."""
        users, refused = self._directory.expand(people)
        refused.update(channels.invite(self._client, channel=channel, users=users))
        if refused:
            log.warning("could not invite to %s: %s", channel, refused)
        return refused

    @best_effort
    def incident_updated(self, *, incident_id: int) -> None:
        """Refresh the headline in place."""
        with session_scope(self._engine) as session:
            incident = incidents.get(session, incident_id=incident_id)
            if incident.headline_ts is None or not channels.is_channel(incident.channel_id):
                return
            headline = self._headline(session, incident)
        # Slack is called outside the transaction: on SQLite it would hold the write lock.
        self._client.chat_update(
            channel=incident.channel_id,
            ts=incident.headline_ts,
            text=incident.title,
            blocks=headline,
        )

    @best_effort
    def proposal_created(self, *, request_id: int) -> None:
        """Post the approval card where the incident is handled."""
        with session_scope(self._engine) as session:
            request = approvals.get(session, request_id=request_id)
            incident = session.get(Incident, request.incident_id) if request.incident_id else None
            own = incident.channel_id if incident else None
            channel = own if channels.is_channel(own) else self._config.slack.announce_channel
            text, card = blocks.approval_card(request, [])
        if channel is None:
            log.warning("rollback request #%s has no channel to be posted in", request_id)
            return
        response = self._client.chat_postMessage(channel=channel, text=text, blocks=card)
        with session_scope(self._engine) as session:
            request = approvals.get(session, request_id=request_id)
            request.slack_channel, request.slack_ts = channel, response["ts"]
            session.add(request)

    @best_effort
    def proposal_decided(self, *, request_id: int) -> None:
        """Show the outcome on the card, and the headline."""
        with session_scope(self._engine) as session:
            request = approvals.get(session, request_id=request_id)
            text, card = blocks.approval_card(
                request, approvals.decisions(session, request_id=request_id)
            )
            incident_id = request.incident_id
        if request.slack_channel and request.slack_ts:
            self._client.chat_update(
                channel=request.slack_channel, ts=request.slack_ts, text=text, blocks=card
            )
        if incident_id is not None:
            self.incident_updated(incident_id=incident_id)

    @best_effort
    def reminder_posted(self, *, incident_id: int, text: str, mentions: tuple[str, ...]) -> None:
        """Post the reminder in the incident channel, mentioning people and user groups."""
        with session_scope(self._engine) as session:
            channel = incidents.get(session, incident_id=incident_id).channel_id
        if not channels.is_channel(channel):
            return
        who = " ".join(
            f"<!subteam^{id_}>" if id_.startswith("S") else f"<@{id_}>"
            for id_ in dict.fromkeys(mentions)
        )
        self._client.chat_postMessage(channel=channel, text=f"{who} {text}" if who else text)

    @best_effort
    def run_progress(self, *, run_id: int, message: str) -> None:
        """Say what the run did in the incident channel, and refresh the headline."""
        with session_scope(self._engine) as session:
            run = session.get(RunbookRun, run_id)
            incident = session.get(Incident, run.incident_id) if run and run.incident_id else None
            channel = incident.channel_id if incident else None
        if not channels.is_channel(channel) or incident is None or incident.id is None:
            return
        self._client.chat_postMessage(channel=channel, text=message)
        self.incident_updated(incident_id=incident.id)

    @best_effort
    def evidence_posted(
        self,
        *,
        incident_id: int,
        summary: str,
        chart_png: bytes | None = None,
        filename: str = "evidence.png",
    ) -> None:
        """Post the numbers, with the chart as a file when there is one."""
        with session_scope(self._engine) as session:
            channel = incidents.get(session, incident_id=incident_id).channel_id
        if not channels.is_channel(channel):
            return
        if chart_png is None:
            self._client.chat_postMessage(channel=channel, text=summary)
            return
        self._client.files_upload_v2(
            channel=channel, file=chart_png, filename=filename, initial_comment=summary
        )

    @best_effort
    def documents_posted(
        self, *, incident_id: int, summary: str, files: list[tuple[str, bytes]]
    ) -> None:
        """Upload the files to the incident's channel with the summary as the comment."""
        with session_scope(self._engine) as session:
            channel = incidents.get(session, incident_id=incident_id).channel_id
        if not channels.is_channel(channel):
            return
        self._client.files_upload_v2(
            channel=channel,
            file_uploads=[{"file": content, "filename": name} for name, content in files],
            initial_comment=summary,
        )

    def _headline(self, session: Session, incident: Incident) -> list[blocks.Block]:
        run = session.exec(
            select(RunbookRun)
            .where(RunbookRun.incident_id == incident.id)
            .order_by(col(RunbookRun.id).desc())
        ).first()
        done = 0
        if run is not None:
            done = int(
                session.scalar(
                    select(func.count())
                    .select_from(StepRun)
                    .where(StepRun.run_id == run.id)
                    .where(StepRun.phase == "forward")
                    .where(StepRun.state == StepState.SUCCEEDED)
                )
                or 0
            )
        return blocks.headline(incident, run, done)
