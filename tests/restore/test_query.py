"""Read-only queries: the whole corpus against a real server, and each refusal comes from the layer it names."""

from collections.abc import Iterator

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from restore.errors import TargetError
from restore.guard import QueryRefused
from restore.query import QueryFailed, execute_in_read_only_transaction, run_read_only
from restore.targets import Target, TargetRole
from tests.pg import PgServer
from tests.restore.guard_corpus import CORPUS, SETUP_SQL, GuardCase


@pytest.fixture(scope="module")
def backup(pg: PgServer) -> Iterator[Target]:
    with pg.database("query") as dsn:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(SETUP_SQL)
        yield Target(name="backup", dsn=dsn, role=TargetRole.BACKUP)


def _table_state(target: Target) -> tuple[int, int, int]:
    with psycopg.connect(target.dsn) as conn:
        accounts, audit = conn.execute(
            "SELECT (SELECT count(*) FROM accounts), (SELECT count(*) FROM audit)"
        ).fetchone()
        seq = conn.execute("SELECT last_value FROM s").fetchone()[0]
    return accounts, audit, seq


@pytest.mark.parametrize("case", CORPUS, ids=lambda case: case.sql[:40] or "<empty>")
def test_corpus_refused_by_the_named_layer(backup: Target, case: GuardCase) -> None:
    before = _table_state(backup)
    if case.refused_by == "allowed":
        result = run_read_only(backup, case.sql)
        assert result.columns
    elif case.refused_by == "parser":
        with pytest.raises(QueryRefused):
            run_read_only(backup, case.sql)
    else:
        with pytest.raises(QueryFailed, match="read-only transaction"):
            run_read_only(backup, case.sql)
    assert _table_state(backup) == before


def test_server_refuses_a_write_even_if_the_parser_were_fooled(backup: Target) -> None:
    with pytest.raises(QueryFailed, match="read-only transaction"):
        execute_in_read_only_transaction(backup, ["DELETE FROM accounts"], limit=10, timeout_s=5)
    assert _table_state(backup)[0] == 500


def test_row_cap_reports_truncation(backup: Target) -> None:
    result = run_read_only(backup, "SELECT id, name FROM accounts ORDER BY id", limit=7)
    assert result.columns == ["id", "name"]
    assert result.rows[0] == [1, "acct 1"]
    assert (result.row_count, result.truncated) == (7, True)
    exact = run_read_only(backup, "SELECT id FROM accounts WHERE id <= 7", limit=7)
    assert (exact.row_count, exact.truncated) == (7, False)


def test_huge_result_is_never_fetched(backup: Target) -> None:
    # 125 million rows, streamed by a nested loop: only limit + 1 of them ever leave the server.
    huge = "SELECT a.id FROM accounts a, accounts b, accounts c"
    result = run_read_only(backup, huge, limit=3, timeout_s=5)
    assert len(result.rows) == 3 and result.truncated
    assert result.seconds < 3


def test_statement_timeout(backup: Target) -> None:
    with pytest.raises(QueryFailed, match="statement timeout"):
        run_read_only(backup, "SELECT count(*) FROM generate_series(1, 1000000000)", timeout_s=0.2)


def test_last_statement_result_and_explain(backup: Target) -> None:
    assert run_read_only(backup, "select 1 as a; select 2 as b").rows == [[2]]
    plan = run_read_only(backup, "EXPLAIN SELECT * FROM accounts")
    assert plan.columns == ["QUERY PLAN"] and plan.rows


def test_production_target_is_refused(backup: Target) -> None:
    production = Target(name="prod", dsn=backup.dsn, role=TargetRole.PRODUCTION)
    with pytest.raises(TargetError, match="production"):
        run_read_only(production, "SELECT 1")


def test_server_errors_come_back_masked(backup: Target) -> None:
    params = conninfo_to_dict(backup.dsn)
    params["password"] = "hunter2-secret"
    with_password = Target(name="pw", dsn=make_conninfo(**params), role=TargetRole.REPLICA)
    with pytest.raises(QueryFailed, match="no_such_table") as failed:
        run_read_only(with_password, "SELECT * FROM no_such_table")
    assert "hunter2" not in str(failed.value)
    unreachable = Target(name="down", dsn="postgresql://u:hunter2-secret@127.0.0.1:1/x", role=TargetRole.REPLICA)
    with pytest.raises(QueryFailed) as failed:
        run_read_only(unreachable, "SELECT 1")
    assert "hunter2" not in str(failed.value)
