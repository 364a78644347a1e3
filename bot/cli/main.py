"""``rollbot``: run the processes, migrate the database, check runbooks, replay detections."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

try:  # Typer 0.29 vendors Click; its exceptions live there.
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover
    from click import exceptions as click_errors  # type: ignore[no-redef]

from bot.cli import audit, db
from bot.cli.context import load_runtime
from bot.errors import RollbotError

app = typer.Typer(
    name="rollbot",
    help="Rollbot: detect degraded ML model versions and roll them back safely, from Slack.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.add_typer(db.app, name="db")
app.add_typer(audit.app, name="audit")


@app.command()
def web(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "0.0.0.0",
    port: Annotated[int | None, typer.Option(help="Port (default: $PORT, else 3000).")] = None,
) -> None:
    """Serve the Slack endpoint, alert webhooks, /healthz, /readyz and /metrics."""
    import uvicorn

    from bot.web.app import create_app

    runtime = load_runtime()
    uvicorn.run(
        create_app(runtime.engine),
        host=host,
        port=port or runtime.settings.port,
        log_config=None,
        timeout_graceful_shutdown=10,
    )


@app.command()
def worker() -> None:
    """Run the scheduler: one leader among all workers, the others stand by."""
    from bot.worker.jobs import periodic_jobs
    from bot.worker.main import Worker

    runtime = load_runtime()
    process = Worker(runtime.engine, periodic_jobs(runtime))
    process.install_signal_handlers()
    process.run()


def main() -> None:
    """Entry point: every failure ends in one clear line and a non-zero exit."""
    command = typer.main.get_command(app)
    try:
        # Without standalone mode, Click hands back the code of typer.Exit instead of raising.
        exit_code = command.main(prog_name="rollbot", standalone_mode=False)
    except click_errors.NoArgsIsHelpError as exc:
        typer.echo(exc.ctx.get_help() if exc.ctx else "", err=True)
        sys.exit(2)
    except click_errors.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx else "rollbot"
        typer.echo(f"{where}: error: {exc.format_message()} (see '{where} --help')", err=True)
        sys.exit(2)
    except click_errors.ClickException as exc:
        typer.echo(f"rollbot: error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        typer.echo("rollbot: aborted", err=True)
        sys.exit(130)
    except RollbotError as exc:
        typer.echo(f"rollbot: {exc}", err=True)
        sys.exit(1)
    if isinstance(exit_code, int) and exit_code:
        sys.exit(exit_code)


if __name__ == "__main__":
    main()
