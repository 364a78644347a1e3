"""Postmortem flows the edges call: render a document, prepare it for Slack, correct a time."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlmodel import Session

from bot.config import RollbotConfig
from bot.incidents import service as incidents
from bot.incidents.service import KEY_TIMES, KeyTime
from bot.postmortem.facts import PostmortemFacts
from bot.postmortem.gather import gather_facts
from bot.postmortem.render import Format, render
from integrations.metrics.base import MetricsSource


@dataclass(frozen=True)
class SlackPostmortem:
    """What `/rollbot postmortem` posts: a summary, and the Markdown and chart as files."""

    incident_id: int
    title: str
    summary: str
    markdown: bytes
    png: bytes
    markdown_filename: str
    png_filename: str


def build_facts(
    session: Session,
    *,
    incident_id: int,
    config: RollbotConfig | None = None,
    metrics: MetricsSource | None = None,
    now: datetime | None = None,
) -> PostmortemFacts:
    """Gather the facts, reading the model's watched metrics when a metrics source is given."""
    return gather_facts(session, incident_id=incident_id, metrics=metrics, config=config, now=now)


def render_document(
    facts: PostmortemFacts,
    *,
    format: Format,
    config: RollbotConfig | None = None,
    correction_url: str | None = None,
    chart_src: str | None = None,
) -> str:
    """The postmortem text; HTML carries the chart inline unless ``chart_src`` points at it."""
    if format == "html" and chart_src is None:
        chart_src = chart_data_uri(facts)
    return render(
        facts,
        format=format,
        templates_dir=config.postmortem.templates_dir if config else None,
        chart_src=chart_src,
        correction_url=correction_url,
    )


def chart_png(facts: PostmortemFacts) -> bytes:
    """The chart as PNG bytes (matplotlib is loaded on the first call only)."""
    from bot.postmortem.chart import render_chart

    return render_chart(facts)


def chart_data_uri(facts: PostmortemFacts) -> str:
    """The chart as a data URI, for a self-contained HTML file."""
    return "data:image/png;base64," + base64.b64encode(chart_png(facts)).decode("ascii")


def postmortem_for_slack(
    session: Session,
    *,
    incident_id: int,
    config: RollbotConfig | None = None,
    metrics: MetricsSource | None = None,
    now: datetime | None = None,
) -> SlackPostmortem:
    """Everything `/rollbot postmortem` needs, as plain data (no Slack here)."""
    facts = build_facts(session, incident_id=incident_id, config=config, metrics=metrics, now=now)
    png_name = f"incident-{incident_id}-metrics.png"
    markdown = render_document(facts, format="md", config=config, chart_src=png_name)
    return SlackPostmortem(
        incident_id=incident_id,
        title=f"Postmortem draft: {facts.title} (incident #{incident_id})",
        summary=facts.summary,
        markdown=markdown.encode("utf-8"),
        png=chart_png(facts),
        markdown_filename=f"incident-{incident_id}-postmortem.md",
        png_filename=png_name,
    )


def correct_key_time(
    session: Session,
    *,
    incident_id: int,
    key: str,
    at: str | datetime,
    actor: str,
    source: str,
    reason: str | None = None,
) -> KeyTime:
    """A person corrects a key time (e.g. ``detected`` to an ISO time); returns the key set.

    Raises ValueError with a message for the person when the key or the time is not valid;
    nothing is changed then.
    """
    incident = incidents.get(session, incident_id=incident_id)
    name = parse_key(key)
    moment = parse_moment(at) if isinstance(at, str) else at
    if moment.tzinfo is None:
        raise ValueError(f"{key}: the time needs a timezone, e.g. 2026-03-01T10:02:00Z")
    if not actor.strip():
        raise ValueError("a correction needs the name of the person making it")
    incidents.correct_time(
        session,
        incident=incident,
        key=name,
        at=moment,
        actor=actor.strip(),
        source=source,
        reason=(reason or "").strip() or None,
    )
    return name


def parse_key(text: str) -> KeyTime:
    """``detected`` or ``detected_at`` → ``detected_at``; ValueError for anything else."""
    name = text.strip().lower()
    name = name if name.endswith("_at") else f"{name}_at"
    if name not in KEY_TIMES:
        known = ", ".join(key.removesuffix("_at") for key in KEY_TIMES)
        raise ValueError(f"unknown key time {text!r}; one of {known}")
    return cast(KeyTime, name)


def parse_moment(text: str) -> datetime:
    """An ISO 8601 time with a timezone (``Z`` allowed); ValueError naming the problem."""
    value = text.strip()
    try:
        moment = datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith("Z") else value)
    except ValueError:
        raise ValueError(
            f"{text!r} is not an ISO 8601 time; write e.g. 2026-03-01T10:02:00Z"
        ) from None
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no timezone; write e.g. 2026-03-01T10:02:00Z")
    return moment
