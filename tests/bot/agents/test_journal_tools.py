"""The journal's tools for agents: the transactions a bad script made, and the plan that undoes them, which writes
nothing (on a cluster with wal_level=logical)."""

from pathlib import Path

from bot.agents.tools import Agent
from bot.config import Settings
from bot.journal.service import start_journal
from bot.services import Services
from bot.store import Store, upgrade
from tests.bot.journal.helpers import SCHEMA, rows, run, targets_for
from tests.journal_cluster import journal_name, logical_pg, source_dsn  # noqa: F401 - fixtures


def test_an_agent_finds_the_scripts_transactions_and_plans_their_undo(source_dsn: str, tmp_path: Path) -> None:  # noqa: F811
    run(source_dsn, SCHEMA, "INSERT INTO customers VALUES (1, 'Ada', NULL), (2, 'Bob', NULL)")
    store = Store(f"sqlite:///{tmp_path / 'rewind.db'}")
    upgrade(store)
    start_journal(store, targets_for(source_dsn), "prod")
    [bad] = run(source_dsn, "DELETE FROM customers WHERE id = 2")
    settings = Settings(database_url=store.url, targets={"prod": {"dsn": source_dsn, "role": "production"}})
    services = Services.create(settings, store)
    agent = Agent(services)
    try:
        log = agent.call("rewind_journal_log", tables=["customers"])
        assert log.ok, log.error
        [txn] = log.result["transactions"]
        assert txn["xid"] == bad and txn["tables"] == {"public.customers": {"insert": 0, "update": 0, "delete": 1}}

        plan = agent.call("rewind_undo_plan", xids=[bad])
        assert plan.ok, plan.error
        assert plan.result["counts"]["public.customers"]["insert"] == 1 and plan.result["conflicts"] == []
        assert "INSERT INTO" in plan.result["sql"] and len(plan.result["sql_sha256"]) == 64
        assert rows(source_dsn, "SELECT id FROM customers ORDER BY id") == [(1,)]  # a plan writes nothing

        refused = agent.call("rewind_undo_plan")
        assert not refused.ok and "Give xids" in refused.error
    finally:
        services.jobs.shutdown()
        store.dispose()
