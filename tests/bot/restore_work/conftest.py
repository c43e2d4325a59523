"""Restore work as a service, without Slack: real Postgres targets (a damaged production, its nightly backup and a
replica of production), a SQLite state store, and a notifier that records what the service hands over."""

from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bot.approvals.views import ProposalView
from bot.config import Settings
from bot.restore_work.notifier import JobThread, QueryAnswer, Verification
from bot.services import Services
from bot.store import Store, upgrade
from restore.meta import record_backup_time
from tests.pg import PgServer

CHANNEL = "C0INC"
ALICE, BOB, CAROL = "U0ALICE", "U0BOB", "U0CAROL"
BACKUP_TIME = datetime(2026, 1, 10, tzinfo=UTC)
SHOP = """
CREATE TABLE products (id text PRIMARY KEY, name text NOT NULL, kind text NOT NULL);
CREATE TABLE prices (id int PRIMARY KEY, product_id text NOT NULL REFERENCES products(id), amount int NOT NULL);
CREATE TABLE orders (id int PRIMARY KEY, product_id text REFERENCES products(id), created_at timestamptz NOT NULL);
INSERT INTO products SELECT 'p' || g, 'product ' || g, CASE WHEN g <= 3 THEN 'tea' ELSE 'coffee' END
FROM generate_series(1, 6) g;
INSERT INTO prices SELECT g, 'p' || (1 + g % 6), g * 100 FROM generate_series(1, 24) g;
INSERT INTO orders VALUES (1, 'p1', '2026-01-05'), (2, 'p2', '2026-01-06');
"""
# The script that destroyed production data, after the backup: a new order, then products and their prices deleted.
DAMAGE = """
INSERT INTO orders VALUES (100, 'p1', '2026-01-11');
SET session_replication_role = replica;
DELETE FROM prices WHERE product_id IN ('p1', 'p2', 'p4');
DELETE FROM products WHERE id IN ('p1', 'p2', 'p4');
"""
# Production lacks this function: a `where` that calls it fails on production and only there.
NOT_ON_PRODUCTION = "CREATE FUNCTION picked(kind text) RETURNS boolean LANGUAGE sql AS $$ SELECT kind = 'tea' $$;"


def execute(dsn: str, script: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(script)


@pytest.fixture(scope="module")
def shop(pg: PgServer) -> Iterator[dict[str, str]]:
    """DSNs of prod (damaged), nightly (the backup, with its backup time) and copy (a replica of prod)."""
    names = {role: pg.create_database(role) for role in ("prod", "nightly", "copy")}
    dsns = {role: pg.dsn_for(name) for role, name in names.items()}
    execute(dsns["prod"], SHOP + DAMAGE)
    execute(dsns["nightly"], SHOP + NOT_ON_PRODUCTION)
    execute(dsns["copy"], SHOP + DAMAGE + NOT_ON_PRODUCTION)
    with psycopg.connect(dsns["nightly"], autocommit=True) as conn:
        record_backup_time(conn, BACKUP_TIME)
    try:
        yield dsns
    finally:
        for name in names.values():
            pg.drop_database(name)


class RecordingNotifier:
    """A `Notifier` that keeps every call with its arguments (the values the service hands over)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.ts = 0

    def _record(self, name: str, *args: Any) -> str:
        self.calls.append((name, args))
        self.ts += 1
        return f"1700000000.{self.ts:06d}"

    def named(self, name: str) -> list[tuple[Any, ...]]:
        return [args for called, args in self.calls if called == name]

    def job_started(self, channel: str, user: str, title: str) -> JobThread:
        ts = self._record("job_started", channel, user, title)
        return JobThread(channel, ts, ts + "1")

    def job_progress(self, thread: JobThread, lines: Sequence[str]) -> None:
        self._record("job_progress", thread, list(lines))

    def job_done(self, thread: JobThread, title: str, summary: str) -> None:
        self._record("job_done", thread, title, summary)

    def job_failed(self, thread: JobThread, title: str, error: str) -> None:
        self._record("job_failed", thread, title, error)

    def query_answered(self, channel: str, user: str, answer: QueryAnswer) -> None:
        self._record("query_answered", channel, user, answer)

    def refused(self, channel: str, user: str, error: str, *, target: str | None = None) -> None:
        self._record("refused", channel, user, error, target)

    def show_proposal(self, proposal: ProposalView) -> str | None:
        ts = self._record("show_proposal", proposal)
        return proposal.message_ts or ts

    def superseded(self, old: ProposalView, by: ProposalView) -> None:
        self._record("superseded", old, by)

    def executing(self, proposal: ProposalView) -> None:
        self._record("executing", proposal)

    def executed(self, proposal: ProposalView) -> None:
        self._record("executed", proposal)

    def verified(self, proposal: ProposalView, verification: Verification) -> None:
        self._record("verified", proposal, verification)

    def expired(self, proposal: ProposalView) -> None:
        self._record("expired", proposal)

    def remind(self, proposal: ProposalView) -> None:
        self._record("remind", proposal)


Make = Callable[..., tuple[Services, RecordingNotifier]]


@pytest.fixture
def make_services(shop: dict[str, str], tmp_path: Path) -> Iterator[Make]:
    """Services over the shop's targets (extra settings as keywords), an incident declared in CHANNEL."""
    made: list[Services] = []

    def make(**overrides: Any) -> tuple[Services, RecordingNotifier]:
        store = Store(f"sqlite:///{tmp_path / f'rewind-{len(made)}.db'}")
        upgrade(store)
        targets = {
            "prod": {"dsn": shop["prod"], "role": "production"},
            "nightly": {"dsn": shop["nightly"], "role": "backup"},
            "copy": {"dsn": shop["copy"], "role": "replica"},
        }
        settings = Settings(database_url=store.url, targets=targets, **overrides)
        services = Services.create(settings, store)
        services.incidents.declare(title="Prices vanished", user_id=ALICE, channel_id=CHANNEL, channel_name="inc-x")
        notifier = RecordingNotifier()
        services.jobs.bind(notifier)
        made.append(services)
        return services, notifier

    yield make
    for services in made:
        services.jobs.shutdown()
        services.store.dispose()
