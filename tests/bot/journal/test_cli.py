"""`rewind journal …` and `rewind undo` as a user runs them, output and exit codes included."""

import json
from pathlib import Path

import pytest

from bot.cli import main
from tests.bot.journal.helpers import SCHEMA, rows, run
from tests.pg import PgServer


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, source_dsn: str) -> str:
    monkeypatch.setenv("REWIND_DATABASE_URL", f"sqlite:///{tmp_path / 'rewind.db'}")
    monkeypatch.setenv("REWIND_TARGETS", json.dumps({"shop": {"dsn": source_dsn, "role": "production"}}))
    monkeypatch.chdir(tmp_path)
    return source_dsn


def out_json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> dict:
    capsys.readouterr()
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_journal_commands_end_to_end(env: str, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    run(
        env, SCHEMA, "INSERT INTO customers VALUES (1, 'Ada', NULL); INSERT INTO products VALUES (7, 'pen', 2, NULL, 1)"
    )
    started = out_json(capsys, ["journal", "start", "--target", "shop", "--json"])
    assert started["journal"] == "shop" and started["slot"] == "rewind_shop"
    (bad,) = run(env, "DELETE FROM customers WHERE id = 1")
    synced = out_json(capsys, ["journal", "sync", "--json"])
    assert synced["synced"] and synced["stats"]["changes"] == 2
    log = out_json(capsys, ["journal", "log", "--name", "shop", "--since", "2000-01-01T00:00:00Z", "--json"])
    assert [(t["xid"], t["tables"]) for t in log["transactions"]] == [
        (bad, {"public.customers": {"insert": 0, "update": 0, "delete": 1},
               "public.products": {"insert": 0, "update": 0, "delete": 1}})
    ]  # fmt: skip
    history = out_json(capsys, ["journal", "row", "--name", "shop", "--table", "products", "--key", "7", "--json"])
    assert [(v["op"], v["old"]["name"]) for v in history["versions"]] == [("delete", "pen")]
    status = out_json(capsys, ["journal", "status", "--json"])
    assert status["slot"]["exists"] and status["transactions"] == 1 and status["last_sync_at"]
    undo_file, redo_file = tmp_path / "undo.sql", tmp_path / "redo.sql"
    undone = out_json(
        capsys,
        ["undo", "--journal", "shop", "--xid", str(bad), "--out", str(undo_file), "--undo", str(redo_file), "--json"],
    )
    assert undone["counts"] == {
        "public.customers": {"insert": 1, "update": 0, "delete": 0},
        "public.products": {"insert": 1, "update": 0, "delete": 0},
    }
    assert undone["conflicts"] == [] and redo_file.exists()
    assert main(["apply", str(undo_file), "--target", "shop"]) == 0  # dry run
    assert rows(env, "SELECT count(*) FROM products") == [(0,)]
    assert main(["apply", str(undo_file), "--target", "shop", "--execute"]) == 0
    assert rows(env, "SELECT id, name FROM products") == [(7, "pen")]
    pruned = out_json(capsys, ["journal", "prune", "--older-than", "0d", "--json"])
    assert pruned["transactions"] == 1 and pruned["changes"] == 2
    stopped = out_json(capsys, ["journal", "stop", "--json"])
    assert stopped["slot_dropped"]
    capsys.readouterr()
    assert main(["journal", "sync"]) == 1
    assert "was stopped" in capsys.readouterr().err


def test_start_says_what_to_change_when_wal_level_is_not_logical(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, pg_dsn: str, capsys: pytest.CaptureFixture[str], pg: PgServer
) -> None:
    monkeypatch.setenv("REWIND_DATABASE_URL", f"sqlite:///{tmp_path / 'rewind.db'}")
    assert main(["journal", "start", "--target", pg_dsn]) == 1
    assert "--name is required" in capsys.readouterr().err
    assert main(["journal", "start", "--target", pg_dsn, "--name", "x"]) == 1
    err = capsys.readouterr().err
    assert "wal_level is 'replica'" in err and "rds.logical_replication = 1" in err
