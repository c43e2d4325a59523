"""Root rows: the keys an incident is about, read from a file or found by diffing backup against live.

Used by `rewind diff`/`gap`, by the graph/plan engine and by restore work from the channel to pick the rows a
restore starts from.
"""

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from psycopg import sql

from restore.catalog import load_catalog
from restore.diff import DiffError, diff_table
from restore.errors import RewindError
from restore.graph import RowStatus, build_graph
from restore.guard import require_read_only
from restore.query import run_read_only
from restore.snapshot import Side, read_only_snapshot
from restore.targets import Target, TargetRole, mask_dsn

ROOTS_LIMIT = 100_000  # backup rows a `where` may pick before deleted_roots asks for a narrower condition


class KeysFileError(RewindError):
    """A keys file that cannot be read or does not match the table's key."""


class RootsError(RewindError):
    """A `where` that cannot pick root rows: not one condition, or matching too many rows."""


def read_keys_file(path: Path, key_len: int) -> list[tuple[Any, ...]]:
    """Keys from `path`: a JSON array of key arrays (`[["prod_1"], ["prod_2"]]`), or, for a one-column key,
    a JSON array of values or one value per line (blank lines and `#` comments ignored)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise KeysFileError(f"Cannot read keys file {path}: {exc.strerror}. Check the path.") from exc
    stripped = text.strip()
    if stripped.startswith("["):
        return _keys_from_json(path, stripped, key_len)
    if key_len != 1:
        raise KeysFileError(
            f"{path} has one value per line, but the key has {key_len} columns; "
            'write a JSON array of key arrays instead, e.g. [["a", 1], ["b", 2]].'
        )
    lines = (line.strip() for line in text.splitlines())
    return [(line,) for line in lines if line and not line.startswith("#")]


def _keys_from_json(path: Path, text: str, key_len: int) -> list[tuple[Any, ...]]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise KeysFileError(f"{path} is not valid JSON ({exc}); write a JSON array of key arrays.") from exc
    keys: list[tuple[Any, ...]] = []
    for item in data:
        key = tuple(item) if isinstance(item, list) else (item,)
        if len(key) != key_len:
            raise KeysFileError(
                f"{path}: key {json.dumps(item)} has {len(key)} values but the table's key has {key_len} columns."
            )
        keys.append(key)
    return keys


def deleted_keys(backup: Side, live: Side, table: str, where: str | None = None) -> list[tuple[Any, ...]]:
    """Keys of rows in the backup (matching `where`) that live no longer has at all.

    A row that live still has but that no longer matches `where` is not deleted: diff_table reports it as changed.
    """
    return [tuple(key) for key in diff_table(backup, live, table, where=where).deleted]


def table_key(backup: Side, table: str, key: Sequence[str] | None = None) -> tuple[str, ...]:
    """The columns rows of `table` are matched by (`key`, else its primary or first unique key), per the backup."""
    with read_only_snapshot(backup, TargetRole.BACKUP, error=DiffError) as (_, conn):
        return load_catalog(conn).table(table).key_columns(key)


def deleted_roots(
    backup: Side,
    live: Side,
    table: str,
    where: str | None = None,
    *,
    limit: int = ROOTS_LIMIT,
    timeout_s: float = 30,
) -> list[tuple[Any, ...]]:
    """Keys of rows in the backup (matching `where`) that live no longer has, with `where` evaluated on the backup only.

    Unlike `deleted_keys`, which filters both sides, the condition runs on the backup alone, as a provably read-only
    query (`run_read_only`: parser check, then a READ ONLY transaction on a backup or replica target, never
    production). Live is only looked up by the keys found. That is why a condition typed by a person may pick the
    roots even when live is production.
    """
    if where is None or not where.strip():
        return deleted_keys(backup, live, table)
    source = backup if isinstance(backup, Target) else Target(name=mask_dsn(backup), dsn=backup, role=TargetRole.BACKUP)
    with read_only_snapshot(source, TargetRole.BACKUP) as (_, conn):
        found = load_catalog(conn).table(table)
    statement = (
        sql.SQL("SELECT {} FROM {} WHERE ({})")
        .format(sql.SQL(", ").join(sql.Identifier(c) for c in found.key_columns()), found.ident, sql.SQL(where))
        .as_string(None)
    )
    if len(require_read_only(statement).statements) != 1:
        raise RootsError(f"The where condition must be one condition, not several statements: {where!r}.")
    result = run_read_only(source, statement, limit=limit, timeout_s=timeout_s)
    if result.truncated:
        raise RootsError(f"More than {limit:,} rows of {found.qualified} match; narrow the where condition.")
    candidates = [tuple(row) for row in result.rows]
    if not candidates:
        return []
    graph = build_graph(source, live, found.qualified, candidates, with_dependents=False)
    return [row.key for row in graph.rows.get(graph.root_table, {}).values() if row.status is RowStatus.MISSING]
