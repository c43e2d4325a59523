"""`rewind run`: migrate the store, then serve Slack over Socket Mode or HTTP, or open the terminal channel."""

import logging
import signal
import sys
import threading
from typing import TextIO

from bot.app import build_app, build_client
from bot.config import RunMode, Settings
from bot.logging import configure_logging
from bot.services import Services
from bot.store import Store, upgrade

log = logging.getLogger("rewind")


def prepare(settings: Settings) -> Services:
    store = Store(settings.database_url)
    upgrade(store)
    return Services.create(settings, store)


def run(settings: Settings, stdin: TextIO | None = None, stdout: TextIO | None = None) -> int:
    configure_logging(quiet=settings.mode == RunMode.SHELL)
    services = prepare(settings)
    if settings.mode == RunMode.SHELL:
        return run_shell(services, stdin or sys.stdin, stdout or sys.stdout)
    app = build_app(services)
    if settings.mode == RunMode.SOCKET:
        from slack_bolt.adapter.socket_mode import SocketModeHandler

        log.info("Rewind connecting over Socket Mode")
        # Its own client opens the connection with the app token; it too must honour REWIND_SLACK_API_URL.
        SocketModeHandler(app, settings.slack_app_token, web_client=build_client(services)).start()
        return 0
    from bot.server import serve_http

    server = serve_http(app, settings.http_port, health_check=lambda: _store_ok(services))
    log.info("Rewind listening on :%s (POST /slack/events, GET /healthz)", server.port)
    _wait_for_signal()
    server.stop()
    return 0


def run_shell(services: Services, stdin: TextIO, stdout: TextIO) -> int:
    """The terminal channel: the local Slack stand-in plays Slack, the real app answers."""
    from bot.localslack import LocalSlack
    from bot.shell import Shell

    with LocalSlack() as slack:
        services.settings = services.settings.model_copy(update={"slack_api_url": slack.url})
        app = build_app(services, client=build_client(services), process_before_response=True)
        Shell(services, slack, app, stdout).run(stdin)
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
