"""Fixtures shared by the restore toolkit's tests: pairs of (backup, live) databases on the test server."""

import argparse
import contextlib
import io
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import psycopg
import pytest

from restore.cli import register
from tests.pg import PgServer

PairFactory = Callable[[str, str, str], tuple[str, str]]


def execute(dsn: str, script: str) -> None:
    """Runs a whole script the way psql would (simple protocol, autocommit, its own BEGIN/COMMIT if any)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(script)


@pytest.fixture
def pair(pg: PgServer) -> Iterator[tuple[str, str]]:
    """(backup DSN, live DSN): two fresh databases on one server."""
    names = [pg.create_database("bk"), pg.create_database("lv")]
    try:
        yield pg.dsn_for(names[0]), pg.dsn_for(names[1])
    finally:
        for name in names:
            pg.drop_database(name)


@contextmanager
def db_pairs(pg: PgServer) -> Iterator[PairFactory]:
    """Makes (backup, live) databases with the same schema and data, then damages live; drops them at the end."""
    with ExitStack() as stack:

        def make(schema: str, data: str, damage: str) -> tuple[str, str]:
            backup, live = stack.enter_context(pg.database("bk")), stack.enter_context(pg.database("live"))
            for dsn, extra in ((backup, ""), (live, damage)):
                with psycopg.connect(dsn, autocommit=True) as conn:
                    conn.execute(schema)
                    conn.execute(data)
                    if extra:
                        conn.execute(extra)
            return backup, live

        yield make


@pytest.fixture
def db_pair(pg: PgServer) -> Iterator[PairFactory]:
    with db_pairs(pg) as make:
        yield make


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Replica records go to a directory of the test's own."""
    monkeypatch.setenv("REWIND_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


def cli(*argv: str, targets: Callable[[], dict] = dict) -> tuple[int, str]:
    """Runs a restore toolkit `rewind` command in-process; (exit status, stdout)."""
    parser = argparse.ArgumentParser(prog="rewind")
    register(parser.add_subparsers(dest="command", required=True), targets)
    args = parser.parse_args(argv)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = args.func(args)
    return code, out.getvalue()
