"""``rollbot db``: database migrations."""

from __future__ import annotations

from typing import Annotated

import typer

from bot.cli.context import database_engine, load_settings
from bot.store import migrate

app = typer.Typer(help="Database migrations (SQLite and PostgreSQL).", no_args_is_help=True)


@app.command()
def upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Apply migrations (the Procfile's release step)."""
    url = load_settings().database_url
    engine = database_engine(url)
    migrate.upgrade(url, revision)
    typer.echo(f"database at {migrate.current_revision(engine)}")


@app.command()
def downgrade(revision: Annotated[str, typer.Argument(help="Target revision, or 'base'.")]) -> None:
    """Revert migrations down to a revision."""
    url = load_settings().database_url
    engine = database_engine(url)
    migrate.downgrade(url, revision)
    typer.echo(f"database at {migrate.current_revision(engine) or 'base'}")


@app.command()
def current() -> None:
    """Print the database's revision and the newest one shipped."""
    engine = database_engine(load_settings().database_url)
    typer.echo(f"current: {migrate.current_revision(engine) or 'none'}")
    typer.echo(f"head:    {migrate.head_revision()}")
