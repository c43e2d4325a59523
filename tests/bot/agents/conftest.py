"""The agent's tools called in-process, on real Postgres targets (the damaged shop, its nightly backup and a replica
of production), a SQLite state store, and the local Slack stand-in where proposals are posted."""

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.agents.tools import Agent
from bot.app import bind_slack_without_bolt
from bot.config import Settings
from bot.localslack.standin import LocalSlack
from bot.services import Services
from bot.store import Store, upgrade
from tests.bot.restore_work.conftest import shop  # noqa: F401 - the module-scoped databases, shared
from tests.rewind_app import BOT_TOKEN
from tests.slack_driver import DEFAULT_CHANNEL, DEFAULT_USER

MakeAgent = Callable[..., tuple[Agent, Services]]


@pytest.fixture
def make_agent(shop: dict[str, str], slack: LocalSlack, tmp_path: Path) -> Iterator[MakeAgent]:  # noqa: F811
    """An agent over the shop's targets (extra settings as keywords; `declare=False` for no incident), its proposals
    posted to the stand-in's incident channel (`slack_side=False`: a process with no Slack connection)."""
    made: list[Services] = []

    def make(
        *, declare: bool = True, cap: int | None = None, slack_side: bool = True, **overrides: Any
    ) -> tuple[Agent, Services]:
        store = Store(f"sqlite:///{tmp_path / f'rewind-{len(made)}.db'}")
        upgrade(store)
        targets = {
            "prod": {"dsn": shop["prod"], "role": "production"},
            "nightly": {"dsn": shop["nightly"], "role": "backup"},
            "copy": {"dsn": shop["copy"], "role": "replica"},
        }
        settings = Settings(
            database_url=store.url, targets=targets, slack_bot_token=BOT_TOKEN, slack_api_url=slack.url, **overrides
        )
        services = Services.create(settings, store)
        if declare:
            services.incidents.declare(
                title="Prices vanished", user_id=DEFAULT_USER, channel_id=DEFAULT_CHANNEL, channel_name="inc-db-outage"
            )
        if slack_side:
            bind_slack_without_bolt(services)
        made.append(services)
        return (Agent(services) if cap is None else Agent(services, cap=cap)), services

    yield make
    for services in made:
        services.jobs.shutdown()
        services.store.dispose()
