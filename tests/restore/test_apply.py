"""The runner: dry runs roll back, executions commit only when the counts match, with timeouts and a recorded xid."""

import argparse
import json
import threading
from pathlib import Path

import psycopg
import pytest

from restore.apply import ApplyError, check_xact, dry_run, execute, split_script
from restore.cli.data import register
from restore.diff import diff_table
from restore.plan import make_plan
from tests.restore.conftest import PairFactory
from tests.restore.test_graph import SHOP, SHOP_DAMAGE, SHOP_DATA
from tests.restore.test_plan import SHOP_TABLES, snapshot


def test_dry_run_reports_counts_and_changes_nothing_then_execute_commits(db_pair: PairFactory) -> None:
    backup, live = db_pair(SHOP, SHOP_DATA, SHOP_DAMAGE)
    revert = ["payments.customer_id", "customers.referred_by"]
    plan = make_plan(backup, live, "customers", [("c1",)], with_dependents=True, revert=revert)
    damaged = snapshot(live, SHOP_TABLES)

    rehearsal = dry_run(live, plan.sql)
    assert not rehearsal.committed and rehearsal.dry_run
    assert snapshot(live, SHOP_TABLES) == damaged
    by_statement = {s.statement: s.rowcount for s in rehearsal.statements}
    assert (
        by_statement['WITH done AS (INSERT INTO "public"."Order Items" ("id", "customer_id", "n", "sku") VALUES'] == 3
    )
    assert (
        sum(
            s.rowcount
            for s in rehearsal.statements
            if s.statement.startswith('WITH done AS (UPDATE "public"."payments"')
        )
        == 3
    )
    assert check_xact(live, rehearsal.xid or 0) == "aborted"

    seen: list[int] = []
    result = execute(live, plan.sql, expected_counts=rehearsal.counts, on_xid=seen.append)
    assert result.committed and result.counts == rehearsal.counts and seen == [result.xid]
    assert check_xact(live, result.xid or 0) == "committed"
    assert snapshot(live, SHOP_TABLES) == snapshot(backup, SHOP_TABLES)
    # The diff over the same rows finds nothing left to restore.
    for table in ("customers", "orders", "Order Items", "payments"):
        diff = diff_table(backup, live, table)
        assert diff.deleted == [] and diff.changed == [], table


def test_execution_that_differs_from_its_dry_run_rolls_back(pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (id int PRIMARY KEY, flag bool); INSERT INTO t VALUES (1, false), (2, false)")
    script = "BEGIN;\nUPDATE t SET flag = true WHERE NOT flag;\nCOMMIT;\n"
    rehearsal = dry_run(pg_dsn, script)
    assert rehearsal.counts == [2]
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("UPDATE t SET flag = true WHERE id = 1")
    xids: list[int] = []
    with pytest.raises(ApplyError, match=r"nothing was changed: statement 1: dry run 2, now 1"):
        execute(pg_dsn, script, expected_counts=rehearsal.counts, on_xid=xids.append)
    assert xids == []
    with psycopg.connect(pg_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM t WHERE flag").fetchone() == (1,)


def test_a_failing_plan_assertion_is_reported_and_rolled_back(db_pair: PairFactory) -> None:
    backup, live = db_pair(SHOP, SHOP_DATA, SHOP_DAMAGE)
    plan = make_plan(backup, live, "customers", [("c1",)], with_dependents=True)
    execute(live, plan.sql)
    restored = snapshot(live, SHOP_TABLES)
    with pytest.raises(ApplyError, match=r"Statement \d+ failed \(DO \$rewind\$\).*got 0.*applied already"):
        execute(live, plan.sql)
    assert snapshot(live, SHOP_TABLES) == restored


def test_timeouts_are_set_for_the_transaction(pg_dsn: str) -> None:
    with pytest.raises(ApplyError, match="statement timeout"):
        execute(pg_dsn, "SELECT pg_sleep(3);", statement_timeout_s=0.2)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (id int)")
    holding, release = threading.Event(), threading.Event()

    def hold_lock() -> None:
        with psycopg.connect(pg_dsn) as conn:
            conn.execute("LOCK TABLE t IN ACCESS EXCLUSIVE MODE")
            holding.set()
            release.wait(10)

    holder = threading.Thread(target=hold_lock)
    holder.start()
    try:
        holding.wait(10)
        with pytest.raises(ApplyError, match="lock timeout"):
            execute(pg_dsn, "INSERT INTO t VALUES (1);", lock_timeout_s=0.2)
    finally:
        release.set()
        holder.join()


def test_deferred_constraints_are_checked_in_a_dry_run(pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE p (id int PRIMARY KEY); CREATE TABLE c (p_id int REFERENCES p DEFERRABLE)")
    script = "BEGIN;\nSET CONSTRAINTS ALL DEFERRED;\nINSERT INTO c VALUES (7);\nCOMMIT;"
    with pytest.raises(ApplyError, match="violates foreign key"):
        dry_run(pg_dsn, script)


def test_script_splitting_keeps_the_runner_in_charge_of_the_transaction() -> None:
    script = "-- a comment; with a semicolon\nBEGIN;\nSELECT 'a;b';\nDO $x$ BEGIN PERFORM 1; END $x$;\nCOMMIT;\n"
    assert [s.strip().splitlines()[-1] for s in split_script(script)] == [
        "SELECT 'a;b'",
        "DO $x$ BEGIN PERFORM 1; END $x$",
    ]
    with pytest.raises(ApplyError, match="controls the transaction"):
        split_script("BEGIN; SELECT 1; COMMIT; DROP TABLE t; COMMIT;")
    with pytest.raises(ApplyError, match="controls the transaction"):
        split_script("SELECT 1; ROLLBACK;")


def test_unknown_transaction_ids_are_none(pg_dsn: str) -> None:
    assert check_xact(pg_dsn, 2**40) is None


def _rewind(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="rewind")
    register(parser.add_subparsers(dest="command", required=True), lambda: {})
    args = parser.parse_args(argv)
    return int(args.func(args))


def test_cli_deps_plan_apply(db_pair: PairFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    backup, live = db_pair(SHOP, SHOP_DATA, SHOP_DAMAGE)
    sides = ("--backup", backup, "--live", live, "--table", "customers", "--deleted")
    assert _rewind("deps", *sides, "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["counts"]["public.orders"]["missing"] == 2
    row = next(r for r in report["rows"] if r["table"] == "public.payments" and r["key"] == ["5"])
    assert row["status"] == "changed" and row["reached_from"]["table"] == "public.customers"

    keys = tmp_path / "keys.txt"
    keys.write_text("c1\n")
    out, undo = tmp_path / "plan.sql", tmp_path / "undo.sql"
    plan_args = ("--backup", backup, "--live", live, "--table", "customers", "--keys", str(keys), "--with-dependents")
    revert = ("--revert", "payments.customer_id,customers.referred_by")
    assert _rewind("plan", *plan_args, *revert, "--out", str(out), "--undo", str(undo)) == 0
    assert "plan written to" in capsys.readouterr().out
    assert "-- made by: rewind plan --backup" in out.read_text() and undo.exists()

    assert _rewind("apply", str(out), "--target", live) == 0
    assert "dry run rolled back, nothing changed" in capsys.readouterr().out
    assert _rewind("apply", str(out), "--target", live, "--execute", "--json") == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert result["committed"] and f"committing transaction {result['xid']}" in captured.err
    assert snapshot(live, SHOP_TABLES) == snapshot(backup, SHOP_TABLES)
    assert _rewind("deps", *sides) == 0
    assert "0 row(s) from 0 root key(s)" in capsys.readouterr().out
