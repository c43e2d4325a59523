"""Root rows: the keys an incident is about, read from a file or found by diffing backup against live.

Used by `rewind diff`/`gap` and by the graph/plan engine to pick the rows a restore starts from.
"""

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from restore.catalog import load_catalog
from restore.diff import DiffError, diff_table
from restore.errors import RewindError
from restore.snapshot import Side, read_only_snapshot
from restore.targets import TargetRole


class KeysFileError(RewindError):
    """A keys file that cannot be read or does not match the table's key."""


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
