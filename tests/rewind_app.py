"""A running Rewind for end-to-end tests: the real Bolt app over HTTP, its WebClient on the local stand-in."""

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from slack_bolt import App
from sqlalchemy import select

from bot.app import build_app
from bot.config import Settings
from bot.localslack.standin import LocalSlack
from bot.localslack.workspace import BOT_USER_ID
from bot.runtime.http import HttpServer, serve_http
from bot.services import Services
from bot.store import Store
from bot.store.models import Entry
from tests.slack_driver import DEFAULT_CHANNEL, DEFAULT_CHANNEL_NAME, DEFAULT_USER, SlackDriver

SIGNING_SECRET = "test-signing-secret"
BOT_TOKEN = "xoxb-test-token-0000"
T = TypeVar("T")


@dataclass
class Rewind:
    slack: LocalSlack
    services: Services
    app: App
    server: HttpServer
    driver: SlackDriver

    def entries(self, include_deleted: bool = False) -> list[Entry]:
        with self.services.store.transaction() as session:
            query = select(Entry).order_by(Entry.id)
            if not include_deleted:
                query = query.where(Entry.deleted_at.is_(None))
            return list(session.scalars(query))

    def declare_here(self, title: str = "Prices vanished", channel: str = DEFAULT_CHANNEL) -> None:
        """An incident in the default `inc-*` channel, declared as a person would."""
        response = self.driver.command(f"declare {title}", channel=channel, channel_name=DEFAULT_CHANNEL_NAME)
        assert response.status == 200, response.text

    def post(self, text: str, user: str = DEFAULT_USER, channel: str = DEFAULT_CHANNEL) -> str:
        return self.slack.post_as_user(channel, user, text)


def settings_for(slack: LocalSlack, store: Store, **overrides: Any) -> Settings:
    return Settings(
        slack_bot_token=BOT_TOKEN,
        slack_signing_secret=SIGNING_SECRET,
        slack_app_token=None,
        slack_api_url=slack.url,
        database_url=store.url,
        **overrides,
    )


@contextmanager
def running_rewind(slack: LocalSlack, store: Store, **overrides: Any) -> Iterator[Rewind]:
    services = Services.create(settings_for(slack, store, **overrides), store)
    app = build_app(services)
    server = serve_http(app, 0, host="127.0.0.1")
    try:
        yield Rewind(slack, services, app, server, SlackDriver(server.url, SIGNING_SECRET))
    finally:
        server.stop()


def prepare_workspace(slack: LocalSlack) -> None:
    slack.add_user(DEFAULT_USER, "alice", real_name="Alice Martin", display_name="alice")
    slack.add_user("U0BOB", "bob", real_name="Bob Stone")
    slack.add_channel(DEFAULT_CHANNEL_NAME, channel_id=DEFAULT_CHANNEL, members=[DEFAULT_USER, "U0BOB", BOT_USER_ID])


def eventually(check: Callable[[], T], timeout: float = 5.0, interval: float = 0.02) -> T:
    """Events are handled after Slack gets its 200; wait for what the listener does.

    Counts sleeps instead of reading a clock, so it also works under freezegun's frozen time.
    """
    result: T | None = None
    for _ in range(max(1, int(timeout / interval))):
        try:
            result = check()
        except AssertionError:
            result = None
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s: last result {result!r}")
