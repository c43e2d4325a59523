"""Restore work as plain, synchronous calls: each checks what a caller can get wrong and returns the toolkit's result.

The background jobs (`jobs.py`) wrap these with progress and notifications; the agent interface (`bot.agents`)
returns their results as they are. The rules hold here or below, for every caller: which databases are compared
(`RestoreTargets.sides`), that a typed `where` runs only on replica and backup targets after the parser classified it
read-only (`check_where`), that a query never runs on production (`RestoreTargets.query_target`), and the parser's
verdict plus the READ ONLY transaction of every query (`restore.query`). None of them writes to a target.
"""

from collections.abc import Sequence
from typing import Any

from bot.errors import UsageError
from bot.restore_work.targets import RestoreTargets, Sides, check_where
from restore.diff import DiffResult, diff_table
from restore.gap import GapResult, find_gap
from restore.graph import Graph, build_graph
from restore.keys import ROOTS_LIMIT, deleted_roots
from restore.plan import Plan, make_plan
from restore.query import DEFAULT_MAX_BYTES, QueryResult, run_read_only
from restore.targets import Target

Key = tuple[Any, ...]


def checked_sides(targets: RestoreTargets, channel: str, table: str, where: str | None, *, on_live: bool) -> Sides:
    """The incident's backup and live targets, once the `where` rule allows this condition (`on_live`: the operation
    evaluates it on the live side too, as a diff does)."""
    sides = targets.sides(channel)
    check_where(sides, table, where, on_live=on_live)
    return sides


def query(
    targets: RestoreTargets,
    name: str,
    sql_text: str,
    *,
    limit: int,
    timeout_s: float = 10,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> tuple[Target, QueryResult]:
    """A read-only query on a configured replica or backup target, never on production."""
    target = targets.query_target(name)
    return target, run_read_only(target, sql_text, limit=limit, timeout_s=timeout_s, max_bytes=max_bytes)


def diff(sides: Sides, table: str, where: str | None) -> DiffResult:
    """Backup vs live by key; with a `where`, live is read where the rule allows it (`Sides.live_read`)."""
    return diff_table(sides.backup, sides.live_read if where else sides.live, table, where=where)


def roots(sides: Sides, table: str, where: str | None, keys: Sequence[Sequence[Any]] | None = None) -> list[Key]:
    """The root rows: the keys given, else the rows deleted since the backup (`where` evaluated on the backup only)."""
    if keys is not None:
        if where:
            raise UsageError("A where condition picks deleted rows; give either keys or deleted rows with a where.")
        if not keys:
            raise UsageError("Give at least one key, e.g. [[42]] (one list of key values per row).")
        return [tuple(key) for key in keys]
    return deleted_roots(sides.backup, sides.live, table, where, limit=ROOTS_LIMIT)


def deps(sides: Sides, table: str, root_keys: Sequence[Key]) -> Graph:
    """Every backup row that references the roots (any depth) and the parents they need, classified against live."""
    return build_graph(sides.backup, sides.live, table, root_keys, with_dependents=True)


def gap(sides: Sides, table: str, root_keys: Sequence[Key]) -> GapResult:
    """Rows in live created after the backup that reference the roots: what the backup cannot give back."""
    return find_gap(sides.backup, sides.live, table, keys=root_keys)


def plan(
    sides: Sides,
    table: str,
    root_keys: Sequence[Key],
    *,
    with_dependents: bool,
    revert: Sequence[str],
    command: str,
) -> Plan:
    """The SQL that restores the roots into live, and its counts. Reads both sides; writes nothing anywhere."""
    return make_plan(
        sides.backup, sides.live, table, root_keys, with_dependents=with_dependents, revert=revert, command=command
    )


__all__ = ["checked_sides", "deps", "diff", "gap", "plan", "query", "roots"]
