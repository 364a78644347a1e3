"""``rollbot replay``: decide over recorded scenarios exactly as a live watch would."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from bot.detection.scenario import DEFAULT_EVALUATION_INTERVAL_SECONDS, replay_files


def replay(
    files: Annotated[list[Path], typer.Argument(help="Scenario files (JSON).")],
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per line per scenario.")
    ] = False,
    interval: Annotated[
        float, typer.Option(help="Seconds between evaluations, as the watch's interval.")
    ] = DEFAULT_EVALUATION_INTERVAL_SECONDS,
) -> None:
    """Replay scenario FILES through the detector; print when each would propose a rollback."""
    if interval <= 0:
        raise typer.BadParameter("must be positive", param_hint="--interval")
    results = replay_files(files, evaluation_interval_seconds=interval)
    if as_json:
        for result in results:
            typer.echo(json.dumps(result, sort_keys=True))
        return
    for index, result in enumerate(results):
        if index == 0:  # after every file was read, so a bad file prints only its error
            typer.echo(f"{'scenario':<34} {'proposed at (UTC)':<20} {'state':<13} explanation")
        typer.echo(_row(result))


def _row(result: dict[str, Any]) -> str:
    proposed = result.get("proposed_at")
    when = (
        datetime.fromtimestamp(proposed, UTC).strftime("%Y-%m-%d %H:%M:%S")
        if proposed is not None
        else "-"
    )
    explanation = str(result.get("explanation", ""))
    if len(explanation) > 100:
        explanation = explanation[:99] + "…"
    return f"{result['name']:<34} {when:<20} {result.get('state', ''):<13} {explanation}"
