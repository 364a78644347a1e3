"""``rollbot``: run the processes, migrate the database, check runbooks, replay detections."""

from __future__ import annotations

import errno
import logging
import socket
import sys
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.exc import DBAPIError

try:  # Typer 0.29 vendors Click; its exceptions live there.
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover
    from click import exceptions as click_errors  # type: ignore[no-redef]

from bot.cli import audit, db
from bot.cli import drill as drill_command
from bot.cli import plan as plan_command
from bot.cli import postmortem as postmortem_command
from bot.cli import replay as replay_command
from bot.cli import runbooks as runbooks_command
from bot.cli.context import import_demo_histories, load_runtime
from bot.config.settings import MAX_PORT, MIN_PORT
from bot.errors import ConfigError, RollbotError
from bot.runbooks import locate_runbooks_dir
from integrations.errors import IntegrationError

log = logging.getLogger(__name__)

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
app.add_typer(runbooks_command.app, name="runbooks")
app.command("plan")(plan_command.plan)
app.command("drill")(drill_command.drill)
app.command("postmortem")(postmortem_command.postmortem)
app.command("replay")(replay_command.replay)


@app.command()
def web(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "0.0.0.0",
    port: Annotated[
        int | None,
        typer.Option(help="Port (default: $PORT, else 3000).", min=MIN_PORT, max=MAX_PORT),
    ] = None,
) -> None:
    """Serve the Slack endpoint, alert webhooks, /healthz, /readyz and /metrics."""
    import uvicorn

    from bot.slack.runtime import connect_socket_mode, slack_app_for
    from bot.web.app import create_app, freeze_startup_heap
    from bot.wiring import build_metrics_source
    from bot.worker.jobs import runtime_notifier

    runtime = load_runtime()
    # A mistyped runbooks_dir stops the process now, not at its first rollback proposal.
    locate_runbooks_dir(runtime.config.runbooks_dir, Path(runtime.settings.rollbot_config))
    import_demo_histories(runtime)
    slack_app = slack_app_for(runtime.settings, runtime.config, runtime.engine)
    listening_port = port if port is not None else runtime.settings.port
    listener = _listen(host, listening_port, option="--port" if port is not None else "PORT")
    if slack_app is not None and runtime.settings.slack_app_token:
        # Socket Mode: Slack requests arrive over the websocket, not at /slack/events.
        connect_socket_mode(slack_app, runtime.settings.slack_app_token)
        slack_app = None
    web_app = create_app(runtime.engine, slack_app=slack_app)
    # Alert intake and postmortem pages share the process's configuration and notifier.
    web_app.state.config = runtime.config
    web_app.state.notifier = runtime_notifier(runtime)
    web_app.state.metrics = build_metrics_source(runtime.config, runtime.settings)
    # Only once every check that stops the process has passed, so a stop stays one line.
    if not runtime.settings.slack_bot_token:
        log.warning("SLACK_BOT_TOKEN is not set: the Slack surface is off")
    if not runtime.settings.rollbot_web_token:
        log.warning(
            "ROLLBOT_WEB_TOKEN is not set: incident pages (/incidents/…) are open to anyone "
            "who reaches this address, and corrections from them are off"
        )
    if not runtime.settings.rollbot_alertmanager_token:
        log.warning(
            "ROLLBOT_ALERTMANAGER_TOKEN is not set: anyone who reaches this address can post "
            "alerts to /alerts/alertmanager%s",
            " and so propose rollbacks" if runtime.config.alertmanager.propose_rollback else "",
        )
    freeze_startup_heap()
    server = uvicorn.Server(
        uvicorn.Config(
            web_app,
            host=host,
            port=listening_port,
            log_config=None,
            timeout_graceful_shutdown=10,
        )
    )
    # uvicorn announces only the sockets it binds itself.
    log.info("listening on http://%s:%d", f"[{host}]" if ":" in host else host, listening_port)
    server.run(sockets=[listener])
    if not server.started:
        raise typer.Exit(3)  # what uvicorn.run exits with when startup fails


def _listen(host: str, port: int, *, option: str) -> socket.socket:
    """The web server's socket, bound before it starts so that a port in use is one line
    naming the option (uvicorn would log it and exit 3)."""
    listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as exc:
        listener.close()
        # An unknown name or an address not on this machine is the host's fault, not the port's.
        culprit = (
            f"--host {host}"
            if isinstance(exc, socket.gaierror) or exc.errno == errno.EADDRNOTAVAIL
            else f"{option} {port}"
        )
        raise ConfigError(f"{culprit}: {exc.strerror or exc}") from None
    return listener


@app.command()
def worker(
    metrics_port: Annotated[
        int | None,
        typer.Option(
            help="Serve the worker's own metrics at /metrics on this port (off if unset).",
            min=MIN_PORT,
            max=MAX_PORT,
        ),
    ] = None,
) -> None:
    """Run the scheduler: one leader among all workers, the others stand by."""
    from prometheus_client import start_http_server

    from bot.worker.jobs import periodic_jobs
    from bot.worker.main import Worker

    runtime = load_runtime()
    # A mistyped runbooks_dir stops the process now, not at its first rollback proposal.
    locate_runbooks_dir(runtime.config.runbooks_dir, Path(runtime.settings.rollbot_config))
    import_demo_histories(runtime)
    if metrics_port is not None:
        try:
            start_http_server(metrics_port)
        except OSError as exc:
            raise ConfigError(f"--metrics-port {metrics_port}: {exc.strerror or exc}") from None
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
    except (DBAPIError, IntegrationError, OSError) as exc:
        typer.echo(f"rollbot: {_problem(exc)}", err=True)
        sys.exit(1)
    if isinstance(exit_code, int) and exit_code:
        sys.exit(exit_code)


def _problem(exc: Exception) -> str:
    """One line for what the commands do not catch themselves: the database, a file, a peer."""
    if isinstance(exc, DBAPIError):
        cause = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
        if "no such table" in cause or ("relation" in cause and "does not exist" in cause):
            return f"the database lacks Rollbot's tables ({cause}): run `rollbot db upgrade`"
        return f"database error: {cause}"
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror or exc}"
    return str(exc)


if __name__ == "__main__":
    main()
