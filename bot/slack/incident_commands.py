"""`/rollbot incident …`, `note`, `models` and `postmortem`: parse done, call the domain, reply."""

from __future__ import annotations

from sqlmodel import Session

from bot.approvals import service as approvals
from bot.errors import NotFoundError, RollbotError
from bot.incidents import channel as incident_channel
from bot.incidents import service as incidents
from bot.runs.service import active_run_for_model
from bot.safe_versions import current_deployment, safe_versions
from bot.slack.blocks import bullet_list, when
from bot.slack.channels import is_channel
from bot.slack.commands import Command
from bot.slack.surface import Caller, Reply, Surface
from bot.store import session_scope
from bot.store.models import Incident
from bot.store.types import utcnow
from integrations.errors import IntegrationError

SOURCE = "slack"


def incident_for(session: Session, *, number: int | None, caller: Caller) -> Incident:
    """The incident named by id, else the one whose channel this is."""
    if number is not None:
        return incidents.get(session, incident_id=number)
    incident = incident_channel.for_channel(session, channel_id=caller.channel or "")
    if incident is None:
        raise NotFoundError("this channel belongs to no incident; give the incident id")
    return incident


def declare(surface: Surface, command: Command, caller: Caller) -> Reply:
    """Declare an incident and open its channel."""
    with session_scope(surface.engine) as session:
        incident = incidents.declare(
            session,
            title=command.text or "",
            actor=caller.user,
            source=SOURCE,
            model=command.model,
            severity=command.severity or "sev3",
        )
    assert incident.id is not None
    surface.notifier.incident_opened(incident_id=incident.id)
    with session_scope(surface.engine) as session:
        channel = incidents.get(session, incident_id=incident.id).channel_id
    where = f" in <#{channel}>" if is_channel(channel) else ""
    return Reply(f"Declared incident #{incident.id}: {incident.title}{where}", in_channel=True)


def list_open(surface: Surface, command: Command, caller: Caller) -> Reply:
    """The unresolved incidents."""
    with session_scope(surface.engine) as session:
        lines = [
            f"#{i.id} {i.severity} {i.status} `{i.model or '—'}` {i.title}"
            + (f" <#{i.channel_id}>" if is_channel(i.channel_id) else "")
            for i in incidents.list_incidents(session)
        ]
    return Reply(bullet_list(lines, empty="No open incidents."))


def status(surface: Surface, command: Command, caller: Caller) -> Reply:
    """One incident's state and key times."""
    with session_scope(surface.engine) as session:
        incident = incident_for(session, number=command.number, caller=caller)
        times = [
            f"{key.removesuffix('_at')}: {when(getattr(incident, key))}"
            for key in incidents.KEY_TIMES
            if getattr(incident, key) is not None
        ]
    head = (
        f"*Incident #{incident.id}: {incident.title}* — {incident.status}, {incident.severity}, "
        f"model `{incident.model or '—'}`"
    )
    return Reply(head + "\n" + bullet_list(times, empty="No key times yet."))


def resolve(surface: Surface, command: Command, caller: Caller) -> Reply:
    """Resolve the incident."""
    with session_scope(surface.engine) as session:
        found = incident_for(session, number=command.number, caller=caller)
        assert found.id is not None
        # Incident, then its requests, then the timeline: the order clicks and proposals take.
        incident = incidents.lock(session, incident_id=found.id)
        withdrawn = approvals.cancel_for_incident(
            session,
            incident_id=found.id,
            actor=caller.user,
            source=SOURCE,
            why=f"incident #{found.id} was resolved",
        )
        incidents.resolve(
            session, incident=incident, actor=caller.user, source=SOURCE, summary=command.text
        )
    surface.notifier.incident_updated(incident_id=found.id)
    for request_id in withdrawn:
        surface.notifier.proposal_decided(request_id=request_id)
    return Reply(f"Incident #{found.id} resolved by <@{caller.user}>.", in_channel=True)


def severity(surface: Surface, command: Command, caller: Caller) -> Reply:
    """Change the severity."""
    with session_scope(surface.engine) as session:
        incident = incident_for(session, number=command.number, caller=caller)
        incidents.set_severity(
            session,
            incident=incident,
            severity=command.severity or "",
            actor=caller.user,
            source=SOURCE,
        )
    assert incident.id is not None
    surface.notifier.incident_updated(incident_id=incident.id)
    return Reply(f"Incident #{incident.id} is now {incident.severity}.", in_channel=True)


def note(surface: Surface, command: Command, caller: Caller) -> Reply:
    """Add a note to the channel's incident timeline."""
    with session_scope(surface.engine) as session:
        incident = incident_for(session, number=None, caller=caller)
        incidents.add_note(
            session, incident=incident, text=command.text or "", actor=caller.user, source=SOURCE
        )
    return Reply(f"Noted on the timeline of incident #{incident.id}.")


def models(surface: Surface, command: Command, caller: Caller) -> Reply:
    """Each watched model: serving version, open incident, active run."""
    lines = []
    with session_scope(surface.engine) as session:
        for name in sorted(surface.config.models):
            serving = current_deployment(session, model=name)
            incident = incidents.open_for_model(session, model=name)
            run = active_run_for_model(session, model=name)
            state = "healthy"
            if run is not None:
                state = f"rolling back (run #{run.id}, {run.status})"
            elif incident is not None:
                state = f"incident #{incident.id} ({incident.status})"
            version = serving.version if serving else None
            safe = _last_safe_version(surface, session, model=name, serving=version)
            lines.append(f"`{name}` serving {version or 'unknown'} · last safe {safe} · {state}")
    return Reply(bullet_list(lines, empty="No models are configured."))


def _last_safe_version(
    surface: Surface, session: Session, *, model: str, serving: str | None
) -> str:
    """The newest safe version, or why it is not known (the registry may be down)."""
    try:
        component = surface.tools.components_for(model)[model]
        candidates = safe_versions(
            session=session,
            registry=component.registry,
            model=model,
            registry_model=component.registry_model,
            policy=surface.config.models[model].safe_version,
            current_version=serving,
            now=utcnow(),
        )
    except (IntegrationError, RollbotError) as exc:
        return f"unknown ({exc})"
    return candidates[0].version if candidates else "none"


def postmortem(surface: Surface, command: Command, caller: Caller) -> Reply:
    """`/rollbot postmortem [ID]`: post the draft's summary, Markdown and chart to the channel."""
    from bot.postmortem.flows import postmortem_for_slack  # matplotlib: only when asked

    with session_scope(surface.engine) as session:
        incident = incident_for(session, number=command.number, caller=caller)
        assert incident.id is not None
        draft = postmortem_for_slack(session, incident_id=incident.id, config=surface.config)
        channel = incident.channel_id
    surface.notifier.documents_posted(
        incident_id=draft.incident_id,
        summary=draft.summary,
        files=[(draft.markdown_filename, draft.markdown), (draft.png_filename, draft.png)],
    )
    where = f" in <#{channel}>" if channel else ""
    return Reply(f"Posted the postmortem draft of incident #{draft.incident_id}{where}.")
