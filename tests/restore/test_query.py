"""Read-only queries: the whole corpus against a real server, and each refusal comes from the layer it names."""

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

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


# --- one statement per call -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "smuggled",
    [
        "SELECT 1; COMMIT; DROP TABLE accounts",
        "SHOW work_mem; COMMIT; DROP TABLE accounts",
        "EXPLAIN SELECT 1; COMMIT; DROP TABLE accounts",
        "VALUES (1); COMMIT; DROP TABLE accounts",
    ],
)
def test_a_smuggled_commit_is_refused_even_past_the_parser(backup: Target, smuggled: str) -> None:
    with pytest.raises(QueryRefused):  # the parser sees three statements and refuses two
        run_read_only(backup, smuggled)
    # Handed to the server as one text, as if the parser had been fooled: the extended protocol takes one statement.
    with pytest.raises(QueryFailed, match="multiple commands"):
        execute_in_read_only_transaction(backup, [smuggled], limit=10, timeout_s=5)
    assert _table_state(backup)[0] == 500


# --- bytes, not only rows ---------------------------------------------------------------------------------------


def test_a_huge_value_is_cut_on_the_server_and_the_result_says_so(backup: Target) -> None:
    result = run_read_only(backup, "SELECT 7 AS id, repeat('x', 5000000) AS body, 'short' AS tag", max_value_chars=1000)
    assert result.rows == [[7, "x" * 1000, "short"]]
    assert [(c.row, c.column, c.original_bytes, c.kept_chars) for c in result.cut_values] == [
        (0, "body", 5000000, 1000)
    ]
    assert not result.truncated
    assert any("body" in note and "1,000 characters" in note and "4.8 MB" in note for note in result.notes())


def test_types_survive_the_cut(backup: Target) -> None:
    wide = "SELECT id, name, ARRAY[id, id] AS pair, jsonb_build_object('id', id) AS doc, NULL::text AS nothing, "
    wide += "'\\xdeadbeef'::bytea AS raw FROM accounts WHERE id <= 2 ORDER BY id"
    result = run_read_only(backup, wide)
    assert result.columns == ["id", "name", "pair", "doc", "nothing", "raw"]
    assert result.rows[0] == [1, "acct 1", [1, 1], {"id": 1}, None, b"\xde\xad\xbe\xef"]
    assert result.cut_values == [] and result.notes() == []


def test_fetching_stops_at_the_byte_cap(backup: Target) -> None:
    result = run_read_only(
        backup, "SELECT id, repeat('y', 1000) AS pad FROM accounts ORDER BY id", limit=500, max_bytes=50_000
    )
    assert 40 <= result.row_count < 50 and result.rows[0][0] == 1
    assert result.truncated and result.byte_capped and result.bytes <= 50_000
    assert any("Stopped after" in note for note in result.notes())


def test_the_cli_never_holds_the_huge_value(backup: Target, tmp_path: Path) -> None:
    # 200 MB on the server; the client process must stay far below that, so the value never crossed the wire.
    probe = (
        "import json, re, sys\n"
        "from bot.cli import main\n"
        "code = main(['query', sys.argv[1], \"select repeat('x', 200000000) as body\", '--json'])\n"
        # VmHWM is this process's own peak; ru_maxrss would carry the forking test runner's size across exec.
        "print(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1), file=sys.stderr)\n"
        "sys.exit(code)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, backup.dsn],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "REWIND_DATABASE_URL": "sqlite:///:memory:"},
    )
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert len(shown["rows"][0][0]) == 10_000 and shown["cut_values"][0]["original_bytes"] == 200_000_000
    assert any("cut to their first 10,000 characters" in note for note in shown["notes"])
    max_rss_kb = int(done.stderr.strip().splitlines()[-1])
    assert max_rss_kb < 150_000
