"""A `where` typed by a person never runs on production: the restore-jobs service enforces it for every caller.

Called directly (no Slack, no handler), on real Postgres. Production lacks the function `picked()` that the backup and
the replica have, so a condition calling it would fail if it ever ran there.
"""

import pytest

from bot.errors import UsageError
from restore.errors import RewindError, TargetError
from restore.guard import QueryRefused
from tests.bot.restore_work.conftest import ALICE, CHANNEL, Make


def test_a_diff_with_a_where_needs_a_replica_of_production(make_services: Make) -> None:
    services, notifier = make_services()
    with pytest.raises(UsageError, match="REWIND_LIVE_REPLICA_TARGET") as refused:
        services.jobs.diff(CHANNEL, ALICE, "products", "picked(kind)")
    assert isinstance(refused.value, RewindError)
    assert refused.value.example == "/inc diff products"
    assert notifier.calls == []  # refused before anything started


def test_with_a_replica_of_production_the_diff_reads_live_there(make_services: Make) -> None:
    services, notifier = make_services(live_replica_target="copy")
    services.jobs.diff(CHANNEL, ALICE, "products", "picked(kind)").result(timeout=60)
    [(_, title, summary)] = notifier.named("job_done")
    assert title == "Diff of products (nightly vs copy)" and summary == "2 deleted, 0 added, 0 changed"
    assert notifier.named("job_failed") == []


@pytest.mark.parametrize("operation", ["deps", "gap", "plan"])
def test_deps_gap_and_plan_run_the_where_on_the_backup_only(make_services: Make, operation: str) -> None:
    """They read live by key only, so they need no replica of production; `picked()` would fail there."""
    services, notifier = make_services()
    jobs = services.jobs
    if operation == "plan":
        future = jobs.plan(CHANNEL, ALICE, "alice", "products", "picked(kind)", False, [], "/inc plan products")
    else:
        future = getattr(jobs, operation)(CHANNEL, ALICE, "products", "picked(kind)")
    future.result(timeout=60)
    assert notifier.named("job_failed") == []
    [(_, _, summary)] = notifier.named("job_done")
    expected = {
        "deps": "2 deleted rows, 10 rows missing in all",
        "gap": "1 rows created after the backup reference the deleted rows",
        "plan": "posted as proposal #1 (proposed)",
    }[operation]
    assert summary.startswith(expected)


@pytest.mark.parametrize("operation", ["diff", "deps", "gap", "plan"])
def test_a_where_that_writes_is_refused_at_once(make_services: Make, operation: str) -> None:
    services, notifier = make_services(live_replica_target="copy")
    jobs = services.jobs
    where = "true); DELETE FROM products WHERE (true"
    with pytest.raises(QueryRefused):
        if operation == "plan":
            jobs.plan(CHANNEL, ALICE, "alice", "products", where, False, [], "/inc plan products")
        else:
            getattr(jobs, operation)(CHANNEL, ALICE, "products", where)
    assert notifier.calls == []


def test_a_query_never_runs_on_production_whoever_asks(make_services: Make) -> None:
    services, notifier = make_services()
    production = services.settings.all_targets()["prod"]
    with pytest.raises(TargetError, match="production"):
        services.jobs.query(CHANNEL, ALICE, production, "SELECT 1")
    with pytest.raises(UsageError, match="never runs there"):
        services.jobs.targets.query_target("prod")
    assert notifier.calls == []
