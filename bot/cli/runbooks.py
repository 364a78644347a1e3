"""``rollbot runbooks``: check the runbooks and the configuration's use of them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bot.cli.context import load_settings
from bot.config import load_config
from bot.runbooks import check, locate_runbooks_dir, read_runbooks

app = typer.Typer(help="Rollback runbooks.", no_args_is_help=True)


@app.command("check")
def check_command(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Runbook files or folders to check (default: every runbook in runbooks_dir)."
        ),
    ] = None,
) -> None:
    """Check runbooks and models: actions, parameters, templates, policies, targets."""
    config_path = Path(load_settings().rollbot_config)
    config = load_config(config_path)
    directory = locate_runbooks_dir(config.runbooks_dir, config_path)
    problems = check(config, directory, paths=paths or None, config_path=config_path)
    if problems:
        for problem in problems:
            typer.echo(str(problem), err=True)
        raise typer.Exit(1)
    runbooks, _ = read_runbooks(directory, paths=paths or None)
    typer.echo(f"ok: {len(runbooks)} runbooks, {len(config.models)} models")
