"""``rollbot audit``: check that the timeline has not been tampered with."""

from __future__ import annotations

import typer
from sqlmodel import Session

from bot.cli.context import database_engine, load_settings
from bot.timeline import count_events, verify_chains

app = typer.Typer(help="Audit the tamper-evident timeline.", no_args_is_help=True)


@app.command()
def verify() -> None:
    """Recompute every timeline hash; name the first broken link of each chain."""
    engine = database_engine(load_settings().database_url)
    with Session(engine) as session:
        broken = verify_chains(session)
        total = count_events(session)
    if broken:
        for link in broken:
            typer.echo(f"rollbot: audit failed: {link.describe()}", err=True)
        raise typer.Exit(1)
    typer.echo(f"timeline intact: {total} events verified")
