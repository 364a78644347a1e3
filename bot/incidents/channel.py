"""The incident's chat channel: which incident a channel belongs to, and who could not join.

Each writes in the caller's transaction, as the rest of :mod:`bot.incidents.service` does.
"""

from __future__ import annotations

from sqlmodel import Session, col, select

from bot.store.models import Incident
from bot.timeline import record_event


def for_channel(session: Session, *, channel_id: str) -> Incident | None:
    """The incident whose Slack channel this is (the newest one, should a channel be reused)."""
    return session.exec(
        select(Incident).where(Incident.channel_id == channel_id).order_by(col(Incident.id).desc())
    ).first()


def attach_channel(
    session: Session, *, incident: Incident, channel_id: str, headline_ts: str | None = None
) -> None:
    """Remember the incident's Slack channel and the headline message kept up to date."""
    incident.channel_id = channel_id
    if headline_ts is not None:
        incident.headline_ts = headline_ts
    session.add(incident)


def record_not_invited(session: Session, *, incident: Incident, refused: dict[str, str]) -> None:
    """People or groups who could not be brought into the incident's channel, and why."""
    who = ", ".join(f"{name} ({why})" for name, why in refused.items())
    record_event(
        session,
        incident_id=incident.id,
        kind="incident.invite_failed",
        source="rollbot",
        actor="rollbot",
        summary=f"Could not invite to the incident channel: {who}",
        details={"refused": refused},
    )
