"""Every command that touches the state store works from an empty directory: it brings the store up to date first.

Each runs `rewind` as a process in a directory with no `rewind.db`, as a newcomer would after `git clone`.
"""

import json
import sqlite3
from pathlib import Path

import pytest

from tests.bot.cli.test_cli import rewind
from tests.bot.importing.test_importer import CHANNEL, make_export


def test_import_from_an_empty_directory(tmp_path: Path) -> None:
    export = make_export(tmp_path)
    done = rewind(tmp_path, "import", "slack-export", str(export), "--channel", CHANNEL, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["declared"] is True
    assert (tmp_path / "rewind.db").exists()


def test_postmortem_from_an_empty_directory(tmp_path: Path) -> None:
    done = rewind(tmp_path, "postmortem", "--channel", "inc-nothing-here")
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "inc-nothing-here" in done.stderr
    assert "Traceback" not in done.stderr


def test_postmortem_after_an_import_from_an_empty_directory(tmp_path: Path) -> None:
    export = make_export(tmp_path)
    assert rewind(tmp_path, "import", "slack-export", str(export), "--channel", CHANNEL).returncode == 0
    done = rewind(tmp_path, "postmortem", "--channel", CHANNEL, "--format", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["timeline"]


def test_db_upgrade_from_an_empty_directory(tmp_path: Path) -> None:
    done = rewind(tmp_path, "db", "upgrade")
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("run",),
        ("db", "upgrade"),
        ("postmortem", "--channel", CHANNEL),
        ("import", "slack-export", "EXPORT", "--channel", CHANNEL),
    ],
    ids=["run", "db upgrade", "postmortem", "import"],
)
def test_a_store_a_newer_rewind_migrated_is_refused_in_one_line(tmp_path: Path, args: tuple[str, ...]) -> None:
    assert rewind(tmp_path, "db", "upgrade").returncode == 0
    with sqlite3.connect(tmp_path / "rewind.db") as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999_from_the_future'")
    args = tuple(str(make_export(tmp_path)) if a == "EXPORT" else a for a in args)
    done = rewind(tmp_path, *args)
    assert done.returncode != 0
    assert done.stderr.count("\n") == 1, done.stderr
    assert "9999_from_the_future" in done.stderr and "newer Rewind" in done.stderr
    with sqlite3.connect(tmp_path / "rewind.db") as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [("9999_from_the_future",)]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("journal", "status"), "no journal"),
        (("journal", "log"), "no journal"),
        (("journal", "prune", "--older-than", "7d"), "no journal"),
        (("undo", "--journal", "prod", "--xid", "1", "--out", "undo.sql"), "prod"),
    ],
    ids=["journal status", "journal log", "journal prune", "undo"],
)
def test_journal_commands_on_an_empty_directory_say_what_to_do(
    tmp_path: Path, args: tuple[str, ...], says: str
) -> None:
    done = rewind(tmp_path, *args)
    assert done.returncode == 1, done.stderr
    assert done.stderr.count("\n") == 1 and says in done.stderr.lower() and "Traceback" not in done.stderr
    assert (tmp_path / "rewind.db").exists()


def test_exec_request_on_an_empty_directory_says_where_to_ask(tmp_path: Path) -> None:
    targets = '{"prod": {"dsn": "postgresql://postgres@127.0.0.1:1/prod", "role": "production"}}'
    done = rewind(
        tmp_path,
        "exec",
        "--request",
        "--",
        "true",
        REWIND_TARGETS=targets,
        DATABASE_URL="postgresql://postgres@127.0.0.1:1/prod",
    )
    assert done.returncode == 1 and "no open incident to ask in" in done.stderr and "Traceback" not in done.stderr
    assert (tmp_path / "rewind.db").exists()


def test_mcp_on_an_empty_directory_brings_the_store_up_and_ends_with_its_input(tmp_path: Path) -> None:
    done = rewind(tmp_path, "mcp")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and (tmp_path / "rewind.db").exists()
