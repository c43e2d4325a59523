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
