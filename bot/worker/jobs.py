"""The periodic jobs the leader runs. Each reads its work from the database."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from bot.worker.main import PeriodicJob

if TYPE_CHECKING:
    from bot.cli.context import Runtime
    from bot.notify import Notifier


_WATCH_TICK = timedelta(seconds=15)


def periodic_jobs(runtime: Runtime) -> list[PeriodicJob]:
    """Every job the scheduler leader runs."""
    from bot.slack.runtime import slack_jobs

    return [
        runbook_runs_job(runtime),
        serving_job(runtime),
        watches_job(runtime),
        approvals_expiry_job(runtime),
        reminders_job(runtime),
        *slack_jobs(runtime),
    ]


def runtime_notifier(runtime: Runtime) -> Notifier:
    """Slack when a bot token is configured; nobody otherwise (the timeline still records)."""
    from bot.notify import NullNotifier

    if not runtime.settings.slack_bot_token:
        return NullNotifier()
    from bot.slack.runtime import slack_notifier

    return slack_notifier(runtime.settings, runtime.config, runtime.engine)


def runbook_runs_job(runtime: Runtime) -> PeriodicJob:
    """Start approved runs and resume any whose worker died (their lease ran out)."""
    from bot.notify import NotifyingRunObserver
    from bot.runs.live import live_engine
    from bot.worker.main import worker_identity

    engine = live_engine(
        runtime.engine,
        runtime.config,
        runtime.settings,
        worker_id=worker_identity(),
        observer=NotifyingRunObserver(runtime_notifier(runtime)),
    )

    def resume_runs() -> None:
        engine.resume_unfinished()

    return PeriodicJob(name="runbook-runs", interval=timedelta(seconds=5), run=resume_runs)


def serving_job(runtime: Runtime) -> PeriodicJob:
    """Ask every deployer what serves and record each change: how Rollbot notices deploys."""
    import logging

    from bot.serving import ServingPoller
    from bot.wiring import served_deployments

    served, problems = served_deployments(runtime.config, runtime.settings)
    for problem in problems:
        logging.getLogger(__name__).error("not watching for deploys through %s", problem)
    poller = ServingPoller(runtime.engine, served)

    def poll() -> None:
        poller.poll()

    return PeriodicJob(name="serving", interval=runtime.config.serving.poll_interval, run=poll)


def watches_job(runtime: Runtime) -> PeriodicJob:
    """Evaluate due watches every 15 s, or every shortest watch interval if shorter."""
    import functools

    from bot.errors import ConfigError
    from bot.proposals import default_tools, propose_with
    from bot.watches.evaluate import evaluate_once
    from bot.watches.targets import watched_models
    from bot.watches.troubles import WatchTroubles
    from bot.wiring import build_metrics_source, no_metrics_source

    config, settings = runtime.config, runtime.settings
    source, watched = build_metrics_source(config, settings), watched_models(config)
    if watched and source is None:
        raise ConfigError(no_metrics_source(watched))
    proposer = functools.partial(propose_with, tools=default_tools(config, settings))
    notifier = runtime_notifier(runtime)
    troubles = WatchTroubles()

    def evaluate() -> None:
        if source is not None and watched:
            evaluate_once(
                runtime.engine,
                config=config,
                source=source,
                proposer=proposer,
                notifier=notifier,
                troubles=troubles,
            )

    # Each watch runs once per its own interval; the job looks often enough for the shortest.
    shortest = min((watch.interval for watch in watched.values()), default=_WATCH_TICK)
    return PeriodicJob(name="watches", interval=min(_WATCH_TICK, shortest), run=evaluate)


def approvals_expiry_job(runtime: Runtime) -> PeriodicJob:
    """Every 30 s: expire requests past their deadline and update their cards, and post the
    cards of pending requests that never reached Slack."""
    from bot.approvals.expiry import expire_requests, post_unposted

    notifier = runtime_notifier(runtime)

    def expire() -> None:
        expire_requests(runtime.engine, notifier=notifier)
        post_unposted(runtime.engine, notifier=notifier)

    return PeriodicJob(name="approvals-expiry", interval=timedelta(seconds=30), run=expire)


def reminders_job(runtime: Runtime) -> PeriodicJob:
    """Every minute: remind approvers of a proposal halfway to its expiry, and responders of
    an incident nobody acknowledged (each once; see bot/reminders.py)."""
    import logging

    from bot.reminders import send_due
    from bot.store.db import session_scope
    from bot.store.types import utcnow

    notifier = runtime_notifier(runtime)

    def remind() -> None:
        with session_scope(runtime.engine) as session:
            due = send_due(session, config=runtime.config, now=utcnow())
        for reminder in due:
            try:
                notifier.reminder_posted(
                    incident_id=reminder.incident_id,
                    text=reminder.text,
                    mentions=reminder.mentions,
                )
            except Exception:
                logging.getLogger(__name__).exception("posting a reminder failed")

    return PeriodicJob(name="reminders", interval=timedelta(minutes=1), run=remind)
