"""`rewind run`: migrate the store, then serve Slack over Socket Mode or HTTP, or open the terminal channel."""

import logging
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TextIO

from apscheduler.schedulers.background import BackgroundScheduler
from slack_bolt import App
from slack_sdk import WebClient

from bot.app import build_app, build_client, journal_warner
from bot.config import RunMode, Settings
from bot.journal.scheduled import JournalKeeper
from bot.journal.service import WalAlert
from bot.journal.sizes import parse_size
from bot.logging import configure_logging
from bot.scribe.reminders import ReminderService, add_proposal_job, start_scheduler
from bot.services import Services
from bot.store import open_store

log = logging.getLogger("rewind")
REMINDER_INTERVAL_S = 60


def prepare(settings: Settings) -> Services:
    return Services.create(settings, open_store(settings.database_url))


def run(settings: Settings, stdin: TextIO | None = None, stdout: TextIO | None = None) -> int:
    configure_logging(quiet=settings.mode == RunMode.SHELL)
    services = prepare(settings)
    if settings.mode == RunMode.SHELL:
        stdin = stdin or sys.stdin
        return run_shell(services, stdin, stdout or sys.stdout, interactive=stdin.isatty())
    app = build_app(services)
    services.jobs.reconcile()  # executions a dead process left `executing`: settled from pg_xact_status, reported
    scheduler = start_reminders(services, app.client)
    add_proposal_job(scheduler, services.jobs.run_due, REMINDER_INTERVAL_S)
    add_journal_job(scheduler, services, journal_warner(app.client, settings.journal_alert_channel))
    try:
        return _serve(settings, services, app)
    finally:
        scheduler.shutdown(wait=False)


def start_reminders(services: Services, client: WebClient) -> BackgroundScheduler:
    """Nudges and action-item reminders; each due one is claimed in the store, so one process posts it."""
    settings = services.settings
    reminders = ReminderService(
        services.store,
        post=lambda channel, text: client.chat_postMessage(channel=channel, text=text),
        nudge_after_minutes=settings.nudge_after_minutes,
        slash_command=settings.slash_command,
    )
    return start_scheduler(reminders, REMINDER_INTERVAL_S)


def add_journal_job(scheduler: BackgroundScheduler, services: Services, warn: Callable[[WalAlert], None]) -> None:
    """Every journal synced every REWIND_JOURNAL_SYNC_SECONDS, and a warning when a slot keeps too much WAL."""
    settings = services.settings
    if not settings.journal_sync_seconds:
        return
    keeper = JournalKeeper(services.store, settings.all_targets, warn, parse_size(settings.journal_wal_limit))
    scheduler.add_job(
        keeper.run_due,
        "interval",
        seconds=settings.journal_sync_seconds,
        id="rewind-journals",
        max_instances=1,
        coalesce=True,
        next_run_time=datetime.now(UTC),
    )


def _serve(settings: Settings, services: Services, app: App) -> int:
    if settings.mode == RunMode.SOCKET:
        from slack_bolt.adapter.socket_mode import SocketModeHandler

        log.info("Rewind connecting over Socket Mode")
        # Its own client opens the connection with the app token; it too must honour REWIND_SLACK_API_URL.
        SocketModeHandler(app, settings.slack_app_token, web_client=build_client(services)).start()
        return 0
    from bot.runtime.http import serve_http

    server = serve_http(app, settings.http_port, health_check=lambda: _store_ok(services))
    log.info("Rewind listening on :%s (POST /slack/events, GET /healthz)", server.port)
    _wait_for_signal()
    server.stop()
    return 0


def run_shell(
    services: Services,
    stdin: TextIO,
    stdout: TextIO,
    *,
    interactive: bool,
    opening: Sequence[str] = (),
    banner: str | None = None,
) -> int:
    """The terminal channel: the local Slack stand-in plays Slack, the real app answers.

    `opening` lines run first (the demo declares its incident), then `banner` is shown. Piped input (not
    `interactive`) runs line by line, each waiting for the work it started, so a script reads like a session."""
    from bot.localslack.standin import LocalSlack
    from bot.runtime.shell import Shell

    with LocalSlack() as slack:
        services.settings = services.settings.model_copy(update={"slack_api_url": slack.url})
        app = build_app(services, client=build_client(services), process_before_response=True)
        scheduler = start_reminders(services, app.client)
        try:
            shell = Shell(services, slack, app, stdout, wait_for_work=None if interactive else services.jobs.wait_idle)
            shell.run(stdin, opening=opening, banner=banner)
        finally:
            scheduler.shutdown(wait=False)
    return 0


def _store_ok(services: Services) -> bool:
    from sqlalchemy import text

    with services.store.engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    return True


def _wait_for_signal() -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
