"""``rollbot db``: database migrations."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from alembic.script.revision import ResolutionError
from alembic.util import CommandError

from bot.cli.context import database_engine, load_settings
from bot.errors import RollbotError
from bot.store import migrate

app = typer.Typer(help="Database migrations (SQLite and PostgreSQL).", no_args_is_help=True)


@app.command()
def upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Apply migrations (the Procfile's release step)."""
    url = load_settings().database_url
    engine = database_engine(url)
    with _revision_errors("upgrade", revision):
        migrate.upgrade(url, revision)
    typer.echo(f"database at {migrate.current_revision(engine)}")


@app.command()
def downgrade(revision: Annotated[str, typer.Argument(help="Target revision, or 'base'.")]) -> None:
    """Revert migrations down to a revision."""
    url = load_settings().database_url
    engine = database_engine(url)
    with _revision_errors("downgrade", revision):
        migrate.downgrade(url, revision)
    typer.echo(f"database at {migrate.current_revision(engine) or 'base'}")


@app.command()
def current() -> None:
    """Print the database's revision and the newest one shipped."""
    engine = database_engine(load_settings().database_url)
    typer.echo(f"current: {migrate.current_revision(engine) or 'none'}")
    typer.echo(f"head:    {migrate.head_revision()}")


@contextmanager
def _revision_errors(command: str, revision: str) -> Iterator[None]:
    """Alembic's refusal of a target revision, as one line that says what the targets are."""
    try:
        yield
    except CommandError as exc:
        if isinstance(exc.__cause__, ResolutionError):
            *older, head = migrate.revisions()
            known = ", ".join(["base", *older, f"{head} (head)"])
            raise RollbotError(
                f"db {command}: no revision {revision!r}; the revisions are {known}"
            ) from None
        raise RollbotError(f"db {command}: {exc}") from None
