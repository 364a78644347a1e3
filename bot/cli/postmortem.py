"""``rollbot postmortem``: write an incident's postmortem draft, and correct its key times."""

from __future__ import annotations

import getpass
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import inspect
from sqlmodel import Session

from bot.cli.context import load_runtime
from bot.errors import RollbotError
from bot.postmortem.flows import build_facts, chart_png, correct_key_time, render_document
from bot.wiring import build_metrics_source


class DocumentFormat(StrEnum):
    """The formats a postmortem is written in."""

    MD = "md"
    HTML = "html"


def postmortem(
    incident: Annotated[
        int, typer.Argument(metavar="INCIDENT", help="The incident number.", show_default=False)
    ],
    format: Annotated[
        DocumentFormat, typer.Option("--format", help="Markdown or a self-contained HTML page.")
    ] = DocumentFormat.MD,
    out: Annotated[
        Path | None,
        typer.Option(help="Write here (Markdown gets its chart beside it as .png); else stdout."),
    ] = None,
    corrections: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="KEY=TIME",
            help="Correct a key time first, e.g. --set detected=2026-03-01T10:04:00Z. "
            "Recorded on the timeline. Keys: degraded, detected, acknowledged, approved, "
            "mitigated, verified, resolved.",
        ),
    ] = None,
    by: Annotated[
        str | None, typer.Option(help="Who makes the corrections (default: your login).")
    ] = None,
    reason: Annotated[str | None, typer.Option(help="Why the times are corrected.")] = None,
) -> None:
    """Write the postmortem draft of INCIDENT: key times, impact, decisions, steps, timeline."""
    runtime = load_runtime()
    if not inspect(runtime.engine).has_table("incident"):
        raise RollbotError("the database has no Rollbot tables yet: run `rollbot db upgrade`")
    with Session(runtime.engine) as session:
        if corrections:
            _apply_corrections(session, incident, corrections, by=by, reason=reason)
        facts = build_facts(
            session,
            incident_id=incident,
            config=runtime.config,
            metrics=build_metrics_source(runtime.config, runtime.settings),
        )
    chart: Path | None = None
    if format is DocumentFormat.HTML:
        document = render_document(facts, format="html", config=runtime.config)
    elif out is not None:
        chart = out.with_suffix(".png")
        if chart == out:
            raise RollbotError(
                f"--out {out}: the Markdown would be overwritten by its chart, which goes "
                "beside it as .png: name it .md"
            )
        document = render_document(facts, format="md", config=runtime.config, chart_src=chart.name)
    else:
        document = render_document(facts, format="md", config=runtime.config)
    if out is None:
        typer.echo(document, nl=False)
        return
    # The document before its chart, so a folder that is missing is reported as the path given.
    out.write_text(document, encoding="utf-8")
    if chart is not None:
        chart.write_bytes(chart_png(facts))
    typer.echo(f"postmortem of incident {incident} written to {out}", err=True)


def _apply_corrections(
    session: Session, incident: int, assignments: list[str], *, by: str | None, reason: str | None
) -> None:
    # All or nothing: one bad assignment leaves every key time as it was.
    actor = by or _login()
    for assignment in assignments:
        key, sep, moment = assignment.partition("=")
        if not sep:
            raise RollbotError(
                f"--set {assignment!r}: write KEY=TIME, e.g. detected=2026-03-01T10:04:00Z"
            )
        try:
            correct_key_time(
                session,
                incident_id=incident,
                key=key,
                at=moment,
                actor=actor,
                source="cli",
                reason=reason,
            )
        except ValueError as exc:
            session.rollback()
            raise RollbotError(f"--set {assignment!r}: {exc}") from None
    session.commit()


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "command line"
