"""A restore plan: one SQL script, in one transaction, that puts a row graph back into live; and its undo script.

Shape of the script:
- BEGIN; a temp table that records one row per affected row, tagged with its step number.
- Inserts of every missing row with its backup values (keys included, generated columns left out, identity
  ALWAYS columns with OVERRIDING SYSTEM VALUE), parents before children. Foreign-key cycles between tables are
  broken by a DEFERRABLE constraint (deferred) or else a nullable foreign key inserted NULL and set afterwards
  ("relink"). Rows of a self-referencing table go parent-first; rows in a reference loop share one statement,
  since Postgres checks foreign keys at the end of each statement.
- Reverts of the chosen columns of changed rows, each guarded by the live value observed when planning.
- An assertion block comparing every step's affected rows with the plan and raising on any difference, so the
  transaction aborts and nothing changes. Every insert is ON CONFLICT DO NOTHING, so a plan run a second time
  inserts nothing, fails its assertion ("expected N rows, got 0") and leaves the database untouched: re-running
  is safe and says that the rows are already there.
- COMMIT.
"""

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from restore.catalog import ForeignKey, Table
from restore.errors import RewindError
from restore.graph import BATCH_SIZE, Graph, GraphError, GraphRow, Key, RowStatus, build_graph
from restore.literals import has_equality, ident, ident_list, quote_text, row_literal
from restore.meta import backup_time_of
from restore.snapshot import Side, read_only_snapshot
from restore.targets import TargetRole, mask_dsn

Action = Literal["insert", "relink", "revert", "keep", "unrevert", "unlink", "delete"]
DONE_TABLE = "pg_temp.rewind_done"


class PlanError(RewindError):
    """A restore that cannot be planned safely (e.g. a foreign-key cycle with nothing to break it)."""


@dataclass
class Step:
    """One counted statement, or several of the same kind over batches of rows; `rows` is the expected count."""

    number: int
    action: Action
    table: Table
    rows: list[GraphRow]
    columns: tuple[str, ...] = ()  # the columns a relink/revert/unrevert/unlink sets
    # Whole-row guard (undo by journal): these columns must still hold the value the row is expected to have
    # (live_values for a revert, values otherwise), not only the columns set.
    guard: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        what = f" ({', '.join(self.columns)})" if self.columns else ""
        return f"{self.action} {len(self.rows)} rows of {self.table.qualified}{what}"


class StepSummary(BaseModel):
    step: int
    action: str
    table: str
    rows: int
    columns: list[str]


@dataclass
class _Layout:
    """What the script does, before any SQL text is written."""

    graph: Graph
    steps: list[Step] = field(default_factory=list)
    undo_steps: list[Step] = field(default_factory=list)
    deferred_constraints: list[ForeignKey] = field(default_factory=list)
    nulled: dict[tuple[str, Key], frozenset[str]] = field(default_factory=dict)  # columns inserted as NULL
    counts: dict[str, dict[str, int]] = field(default_factory=dict)


@dataclass
class Plan:
    """The restore script and its undo. `sql`/`undo_sql` are built on first use; `write()` streams to files."""

    graph: Graph
    counts: dict[str, dict[str, int]]
    backup_time: datetime | None
    command: str
    layout: _Layout
    batch_size: int = BATCH_SIZE
    header: tuple[list[str], list[str]] | None = None  # comment lines for the script and its undo, if not a restore

    @property
    def steps(self) -> list[StepSummary]:
        return [_summary(s) for s in self.layout.steps]

    @property
    def undo_steps(self) -> list[StepSummary]:
        return [_summary(s) for s in self.layout.undo_steps]

    @property
    def empty(self) -> bool:
        return not self.layout.steps

    @cached_property
    def sql(self) -> str:
        return "".join(self._chunks(undo=False))

    @cached_property
    def undo_sql(self) -> str:
        return "".join(self._chunks(undo=True))

    def write(self, out: Path, undo: Path | None = None) -> None:
        """Writes the script (and the undo script) chunk by chunk, never holding all of it."""
        for path, is_undo in ((out, False), (undo, True)):
            if path is not None:
                with path.open("w", encoding="utf-8") as fh:
                    fh.writelines(self._chunks(undo=is_undo))

    def _chunks(self, *, undo: bool) -> Iterator[str]:
        yield from _header(self, undo=undo)
        steps = self.layout.undo_steps if undo else self.layout.steps
        yield from _script(self.layout, steps, self.batch_size, undo=undo)


def make_plan(
    backup: Side,
    live: Side,
    table: str,
    roots: Sequence[tuple[Any, ...]],
    *,
    with_dependents: bool,
    revert: Sequence[str] = (),
    command: str = "",
    batch_size: int = BATCH_SIZE,
) -> Plan:
    """Plans the restore of `roots` (keys of `table`) and what they need, from backup into live."""
    graph = build_graph(backup, live, table, roots, with_dependents=with_dependents, batch_size=batch_size)
    with read_only_snapshot(backup, TargetRole.BACKUP, error=GraphError) as (_, conn):
        backup_time = backup_time_of(conn)
    return plan_from_graph(graph, revert=revert, command=command, backup_time=backup_time, batch_size=batch_size)


def plan_from_graph(
    graph: Graph,
    *,
    revert: Sequence[str] = (),
    command: str = "",
    backup_time: datetime | None = None,
    batch_size: int = BATCH_SIZE,
) -> Plan:
    layout = _lay_out(graph, _revert_columns(graph, revert))
    return Plan(graph, layout.counts, backup_time, command, layout, batch_size)


# --- layout -----------------------------------------------------------------------------------------------------


def _revert_columns(graph: Graph, specs: Sequence[str]) -> dict[str, set[str]]:
    """`table.column`, `schema.table.column`, or a bare `column` (every table of the graph that has it)."""
    chosen: dict[str, set[str]] = defaultdict(set)
    for raw in (s.strip() for spec in specs for s in spec.split(",")):
        if not raw:
            continue
        table_name, _, column = raw.rpartition(".")
        tables = [graph.catalog.table(table_name)] if table_name else list(_graph_tables(graph))
        matched = [t for t in tables if column in t.column_names]
        if not matched:
            where = table_name or "any table of the restore"
            raise PlanError(f"--revert {raw}: {where} has no column {column!r}; name it as table.column.")
        for t in matched:
            if t.column(column).generated:
                raise PlanError(f"--revert {raw}: {t.qualified}.{column} is generated; it cannot be set.")
            chosen[t.qualified].add(column)
    return chosen


def _graph_tables(graph: Graph) -> Iterator[Table]:
    for name in graph.rows:
        yield graph.table(name)


def _lay_out(graph: Graph, revert: dict[str, set[str]]) -> _Layout:
    layout = _Layout(graph)
    missing = {name: [r for r in rows.values() if r.status is RowStatus.MISSING] for name, rows in graph.rows.items()}
    missing = {name: rows for name, rows in missing.items() if rows}
    refs = _inserted_refs(graph, missing)
    order, deferred = _table_order(graph, missing, refs)
    relinks: list[tuple[Table, ForeignKey, list[GraphRow]]] = []
    for fk in deferred:
        if fk.deferrable:
            layout.deferred_constraints.append(fk)
            continue
        child = graph.table(fk.table)
        nullable = tuple(c for c in fk.columns if not child.column(c).not_null)
        rows = _rows_referencing(child, fk, missing[fk.table], refs)
        for row in rows:
            key = (fk.table, row.key)
            layout.nulled[key] = layout.nulled.get(key, frozenset()) | frozenset(nullable)
        relinks.append((child, fk, rows))
    inserts = [Step(0, "insert", graph.table(name), missing[name]) for name in order]
    relink_steps = [
        Step(0, "relink", t, rows, tuple(c for c in fk.columns if c in _nulled_cols(layout, t, rows)))
        for t, fk, rows in relinks
        if rows
    ]
    reverts = list(_revert_steps(graph, revert))
    layout.steps = _numbered([*inserts, *relink_steps, *reverts])
    undo = [Step(0, "unrevert", s.table, s.rows, s.columns) for s in reverts]
    undo += [Step(0, "unlink", s.table, s.rows, s.columns) for s in relink_steps]
    undo += [Step(0, "delete", s.table, s.rows) for s in reversed(inserts)]
    layout.undo_steps = _numbered(undo)
    layout.counts = _counts(graph, layout.steps)
    return layout


def _nulled_cols(layout: _Layout, table: Table, rows: list[GraphRow]) -> set[str]:
    return {c for r in rows for c in layout.nulled.get((table.qualified, r.key), ())}


def _numbered(steps: list[Step]) -> list[Step]:
    for number, step in enumerate(steps, start=1):
        step.number = number
    return steps


def _counts(graph: Graph, steps: list[Step]) -> dict[str, dict[str, int]]:
    counts = {name: {"insert": 0, "relink": 0, "revert": 0, "keep": 0} for name in graph.rows}
    touched: dict[str, set[Key]] = defaultdict(set)
    for step in steps:
        counts[step.table.qualified][step.action] += len(step.rows)
        touched[step.table.qualified].update(r.key for r in step.rows)
    for name, rows in graph.rows.items():
        counts[name]["keep"] = sum(
            1 for r in rows.values() if r.status is not RowStatus.MISSING and r.key not in touched[name]
        )
    return counts


def _inserted_refs(graph: Graph, missing: dict[str, list[GraphRow]]) -> dict[tuple[str, tuple[str, ...]], set[tuple]]:
    """For each (table, referenced columns) used by some foreign key: the values of rows this plan inserts."""
    refs: dict[tuple[str, tuple[str, ...]], set[tuple]] = {}
    for name in missing:
        for fk in graph.table(name).foreign_keys:
            if fk.ref_table in missing and (fk.ref_table, fk.ref_columns) not in refs:
                parent = graph.table(fk.ref_table)
                idx = [parent.column_names.index(c) for c in fk.ref_columns]
                refs[(fk.ref_table, fk.ref_columns)] = {tuple(r.values[i] for i in idx) for r in missing[fk.ref_table]}
    return refs


def _rows_referencing(
    child: Table, fk: ForeignKey, rows: list[GraphRow], refs: dict[tuple[str, tuple[str, ...]], set[tuple]]
) -> list[GraphRow]:
    """Rows of `child` whose `fk` points at a row this plan inserts."""
    targets = refs.get((fk.ref_table, fk.ref_columns), set())
    idx = [child.column_names.index(c) for c in fk.columns]
    return [r for r in rows if tuple(r.values[i] for i in idx) in targets]


def _table_order(
    graph: Graph, missing: dict[str, list[GraphRow]], refs: dict[tuple[str, tuple[str, ...]], set[tuple]]
) -> tuple[list[str], list[ForeignKey]]:
    """Tables parents-first, and the foreign keys deferred to break cycles. Only references between rows this
    plan inserts count: an insert that points at a row already in live needs no ordering."""
    edges: dict[str, list[ForeignKey]] = {
        name: [
            fk
            for fk in graph.table(name).foreign_keys
            if fk.ref_table in missing and fk.ref_table != name and _rows_referencing(graph.table(name), fk, rows, refs)
        ]
        for name, rows in missing.items()
    }
    order: list[str] = []
    deferred: list[ForeignKey] = []
    remaining = set(missing)
    while remaining:
        ready = sorted(n for n in remaining if all(fk.ref_table not in remaining for fk in edges[n]))
        if ready:
            order.extend(ready)
            remaining.difference_update(ready)
            continue
        cycle = _find_cycle(remaining, edges)
        breaker = _breaker(graph, cycle)
        edges[breaker.table].remove(breaker)
        deferred.append(breaker)
    return order, deferred


def _find_cycle(remaining: set[str], edges: dict[str, list[ForeignKey]]) -> list[ForeignKey]:
    """A cycle of foreign keys among `remaining`, every one of which has an edge into `remaining`."""
    path: list[ForeignKey] = []
    seen: dict[str, int] = {}
    node = min(remaining)
    while node not in seen:
        seen[node] = len(path)
        fk = next(fk for fk in edges[node] if fk.ref_table in remaining)
        path.append(fk)
        node = fk.ref_table
    return path[seen[node] :]


def _breaker(graph: Graph, cycle: list[ForeignKey]) -> ForeignKey:
    """The foreign key to defer: a DEFERRABLE one, else one with a nullable column (inserted NULL, set later)."""
    for fk in cycle:
        if fk.deferrable:
            return fk
    for fk in cycle:
        child = graph.table(fk.table)
        if any(not child.column(c).not_null for c in fk.columns):
            return fk
    described = " -> ".join(f"{fk.table} ({fk.name})" for fk in cycle) + f" -> {cycle[0].table}"
    raise PlanError(
        f"Cannot order the inserts: the foreign keys {described} form a cycle and none of them is DEFERRABLE or has "
        "a nullable column to insert as NULL first. Make one of these constraints DEFERRABLE, or restore these "
        "rows by hand."
    )


def _revert_steps(graph: Graph, revert: dict[str, set[str]]) -> Iterator[Step]:
    for name, columns in revert.items():
        table = graph.table(name)
        groups: dict[tuple[str, ...], list[GraphRow]] = defaultdict(list)
        for row in graph.rows.get(name, {}).values():
            if row.status is RowStatus.CHANGED:
                cols = tuple(c for c in table.column_names if c in columns and c in row.changed_columns)
                if cols:
                    groups[cols].append(row)
        for cols, rows in groups.items():
            yield Step(0, "revert", table, rows, cols)


def _summary(step: Step) -> StepSummary:
    return StepSummary(
        step=step.number,
        action=step.action,
        table=step.table.qualified,
        rows=len(step.rows),
        columns=list(step.columns),
    )


# --- SQL text ---------------------------------------------------------------------------------------------------


def _header(plan: Plan, *, undo: bool) -> Iterator[str]:
    if plan.header is not None:
        yield from (f"-- {line}\n" for line in plan.header[1 if undo else 0])
        return
    graph = plan.graph
    title = (
        "Rewind undo script (reverses the restore plan made by the command below)" if undo else "Rewind restore plan"
    )
    when = plan.backup_time.isoformat() if plan.backup_time else "unknown (not provisioned by rewind)"
    command = " ".join(mask_dsn(plan.command).split()) or "(library call)"
    yield f"-- {title}\n"
    yield f"-- backup time: {when}\n"
    yield f"-- made by: {command}\n"
    yield f"-- roots: {graph.roots_found} rows of {graph.root_table}"
    yield f" ({graph.roots_not_in_backup} given keys not in the backup)\n" if graph.roots_not_in_backup else "\n"
    yield "-- rows per table and action:\n"
    for name, per_action in plan.counts.items():
        parts = ", ".join(f"{action} {n}" for action, n in per_action.items())
        yield f"--   {name}: {parts}\n"
    if undo:
        yield "-- Deletes only the rows the plan inserted, by key; deleting them also fires their ON DELETE rules.\n"
    else:
        yield "-- One transaction; every step's row count is asserted and any difference aborts it. Running it again\n"
        yield "-- after it was applied aborts at the assertion (the rows are already there) and changes nothing.\n"


def _script(layout: _Layout, steps: list[Step], batch_size: int, *, undo: bool) -> Iterator[str]:
    yield "\nBEGIN;\n"
    if not steps:
        yield "-- nothing to do: every row is already in live (or only changed in columns not chosen with --revert)\n"
        yield "COMMIT;\n"
        return
    for fk in layout.deferred_constraints:
        yield f"SET CONSTRAINTS {ident(layout.graph.table(fk.table).schema, fk.name)} DEFERRED;\n"
    yield "CREATE TEMP TABLE rewind_done (step int NOT NULL) ON COMMIT DROP;\n"
    for step in steps:
        yield f"\n-- step {step.number}: {step.label}\n"
        for batch in _batches(_row_order(step), batch_size):
            yield _counted(step.number, _statement(layout, step, batch))
    yield "\n" + _assertion(steps, undo=undo)
    yield "COMMIT;\n"


def _batches(groups: list[tuple[list[GraphRow], bool]], batch_size: int) -> Iterator[list[GraphRow]]:
    """Runs of at most `batch_size` rows; a group that must stay together (a reference loop) is never split."""
    for rows, together in groups:
        if together:
            yield rows
            continue
        for start in range(0, len(rows), batch_size):
            yield rows[start : start + batch_size]


def _counted(number: int, statement: str) -> str:
    # The statement starts on the first line, so a runner's one-line preview names the table and action.
    return f"WITH done AS ({statement}\nRETURNING 1\n)\nINSERT INTO {DONE_TABLE} (step) SELECT {number} FROM done;\n"


def _statement(layout: _Layout, step: Step, rows: list[GraphRow]) -> str:
    table = step.table
    if step.action == "insert":
        return _insert(table, rows, layout.nulled)
    guard = [c for c in step.guard if c not in step.columns]
    if step.action == "delete":
        return _delete(table, rows, guard)
    cols = step.columns
    pick = _picker(table, cols)
    backup = [pick(r.values) for r in rows]
    if step.action == "relink":
        return _update(table, rows, cols, new=backup, old=None)
    if step.action == "unlink":
        return _update(table, rows, cols, new=[tuple(None for _ in cols) for _ in rows], old=backup)
    observed = [pick(r.live_values) if r.live_values else _pick_none(cols) for r in rows]
    if step.action == "revert":
        by_guard = _picker(table, guard)
        extra = (guard, [by_guard(r.live_values) if r.live_values else _pick_none(guard) for r in rows])
        return _update(table, rows, cols, new=backup, old=observed, guard=extra)
    if step.action == "unrevert":
        by_guard = _picker(table, guard)
        extra = (guard, [by_guard(r.values) for r in rows])
        return _update(table, rows, cols, new=observed, old=backup, guard=extra)
    raise AssertionError(step.action)


def _picker(table: Table, columns: Sequence[str]) -> Callable[[Sequence[str | None]], tuple[str | None, ...]]:
    """Picks `columns` out of a row in the table's column order; the positions are looked up once per statement."""
    names = table.column_names
    idx = [names.index(c) for c in columns]
    return lambda values: tuple([values[i] for i in idx])


def _pick_none(columns: Sequence[str]) -> tuple[None, ...]:
    return tuple(None for _ in columns)


def _insert(table: Table, rows: list[GraphRow], nulled: dict[tuple[str, Key], frozenset[str]]) -> str:
    cols = [c for c in table.columns if c.insertable]
    idx = [table.column_names.index(c.name) for c in cols]
    types = [c.type_name for c in cols]
    overriding = " OVERRIDING SYSTEM VALUE" if any(c.identity == "a" for c in cols) else ""
    name = table.qualified
    lines = []
    for row in rows:
        values = [row.values[i] for i in idx]
        skip = nulled.get((name, row.key))
        if skip:
            values = [None if c.name in skip else v for c, v in zip(cols, values, strict=True)]
        lines.append(row_literal(values, types))
    return (
        f"INSERT INTO {ident(table.schema, table.name)} ({ident_list(c.name for c in cols)}){overriding} VALUES\n"
        + ",\n".join(lines)
        + "\nON CONFLICT DO NOTHING"
    )


def _key_values(table: Table, rows: Iterable[GraphRow]) -> tuple[list[str], list[list[str | None]]]:
    key = table.key_columns()
    return [table.column(c).type_name for c in key], [list(r.key) for r in rows]


def _update(
    table: Table,
    rows: list[GraphRow],
    columns: Sequence[str],
    *,
    new: list[tuple[str | None, ...]],
    old: list[tuple[str | None, ...]] | None,
    guard: tuple[Sequence[str], list[tuple[str | None, ...]]] = ((), []),
) -> str:
    """UPDATE ... FROM (VALUES key, new, old, guard) guarded by the old values (or IS NULL when `old` is None)
    and by the `guard` columns' expected values."""
    key = table.key_columns()
    key_types, keys = _key_values(table, rows)
    types = [table.column(c).type_name for c in columns]
    guard_cols, guard_values = guard
    guard_types = [table.column(c).type_name for c in guard_cols]
    all_types = key_types + types + (types if old is not None else []) + guard_types
    names = [f"k{i}" for i in range(len(key))] + [f"n{i}" for i in range(len(columns))]
    names += [f"o{i}" for i in range(len(columns))] if old is not None else []
    names += [f"g{i}" for i in range(len(guard_cols))]
    lines = []
    for i, k in enumerate(keys):
        values = [*k, *new[i], *(old[i] if old is not None else ()), *(guard_values[i] if guard_cols else ())]
        lines.append(row_literal(values, all_types, typed_null=True))
    sets = ", ".join(f"{ident(c)} = v.n{i}" for i, c in enumerate(columns))
    where = [f"t.{ident(c)} = v.k{i}" for i, c in enumerate(key)]
    for i, (c, t) in enumerate(zip(columns, types, strict=True)):
        if old is None:
            where.append(f"t.{ident(c)} IS NULL")
        elif has_equality(t):
            where.append(f"t.{ident(c)} IS NOT DISTINCT FROM v.o{i}")
        else:
            where.append(f"t.{ident(c)}::text IS NOT DISTINCT FROM v.o{i}::text")
    where += _guards(guard_cols, guard_types)
    return (
        f"UPDATE {ident(table.schema, table.name)} AS t SET {sets}\nFROM (VALUES\n"
        + ",\n".join(lines)
        + f"\n) AS v({', '.join(names)})\nWHERE "
        + " AND ".join(where)
    )


def _guards(columns: Sequence[str], types: Sequence[str]) -> list[str]:
    return [
        f"t.{ident(c)} IS NOT DISTINCT FROM v.g{i}"
        if has_equality(t)
        else f"t.{ident(c)}::text IS NOT DISTINCT FROM v.g{i}::text"
        for i, (c, t) in enumerate(zip(columns, types, strict=True))
    ]


def _delete(table: Table, rows: list[GraphRow], guard: Sequence[str] = ()) -> str:
    """DELETE by key; with `guard`, only rows whose guard columns still hold the row's values."""
    key = table.key_columns()
    key_types, keys = _key_values(table, rows)
    guard_types = [table.column(c).type_name for c in guard]
    by_guard = _picker(table, guard)
    if guard:
        lines = [
            row_literal([*k, *by_guard(r.values)], key_types + guard_types, typed_null=True)
            for k, r in zip(keys, rows, strict=True)
        ]
    else:
        lines = [row_literal(k, key_types, typed_null=True) for k in keys]
    names = ", ".join([f"k{i}" for i in range(len(key))] + [f"g{i}" for i in range(len(guard))])
    where = " AND ".join([f"t.{ident(c)} = v.k{i}" for i, c in enumerate(key)] + _guards(guard, guard_types))
    return (
        f"DELETE FROM {ident(table.schema, table.name)} AS t USING (VALUES\n"
        + ",\n".join(lines)
        + f"\n) AS v({names})\nWHERE {where}"
    )


def _row_order(step: Step) -> list[tuple[list[GraphRow], bool]]:
    """Groups of rows to write in order, each flagged when it must stay in one statement. For inserts into a
    self-referencing table: parents first; rows in a reference loop (and rows below them) form one last group
    that stays together. Deletes run the same groups in reverse: children first."""
    if step.action not in ("insert", "delete"):
        return [(step.rows, False)]
    groups = _self_reference_groups(step.table, step.rows)
    if step.action == "insert":
        return groups
    return [(list(reversed(rows)), together) for rows, together in reversed(groups)]


def _self_reference_groups(table: Table, rows: list[GraphRow]) -> list[tuple[list[GraphRow], bool]]:
    self_fks = [fk for fk in table.foreign_keys if fk.self_referencing]
    if not self_fks:
        return [(rows, False)]
    names = table.column_names
    parents: dict[Key, set[Key]] = {r.key: set() for r in rows}
    for fk in self_fks:
        ref_idx = [names.index(c) for c in fk.ref_columns]
        by_ref = {tuple(r.values[i] for i in ref_idx): r.key for r in rows}
        col_idx = [names.index(c) for c in fk.columns]
        for r in rows:
            parent = by_ref.get(tuple(r.values[i] for i in col_idx))
            if parent is not None and parent != r.key:
                parents[r.key].add(parent)
    ordered = _levels(parents)
    by_key = {r.key: r for r in rows}
    placed = set(ordered)
    groups = [([by_key[k] for k in ordered], False)]
    loops = [r for r in rows if r.key not in placed]
    return [*groups, (loops, True)] if loops else groups


def _levels(parents: dict[Key, set[Key]]) -> list[Key]:
    """Kahn's algorithm: keys whose parents all come earlier. Keys in (or below) a loop are left out."""
    children: dict[Key, list[Key]] = defaultdict(list)
    waiting = {k: len(p) for k, p in parents.items()}
    for k, ps in parents.items():
        for p in ps:
            children[p].append(k)
    ready = [k for k, n in waiting.items() if n == 0]
    ordered: list[Key] = []
    while ready:
        ordered.extend(ready)
        following = []
        for k in ready:
            for c in children[k]:
                waiting[c] -= 1
                if waiting[c] == 0:
                    following.append(c)
        ready = following
    return ordered


def _assertion(steps: list[Step], *, undo: bool) -> str:
    expected = ",\n    ".join(f"({s.number}, {quote_text(s.label.replace('$', ''))}, {len(s.rows)})" for s in steps)
    what = "undo" if undo else "restore plan"
    hint = (
        "The rows it would delete are gone or were changed since. Check live before retrying."
        if undo
        else "If it got 0 inserted rows, the plan was applied already. Otherwise rows changed in live since the "
        "plan was made: run rewind plan again."
    )
    return f"""DO $rewind$
DECLARE
  problems text;
BEGIN
  SELECT string_agg(format('step %s (%s): expected %s rows, got %s', e.step, e.what, e.expected, coalesce(d.n, 0)),
                    '; ' ORDER BY e.step)
    INTO problems
    FROM (VALUES
    {expected}
    ) AS e(step, what, expected)
    LEFT JOIN (SELECT step, count(*) AS n FROM {DONE_TABLE} GROUP BY step) AS d USING (step)
   WHERE e.expected <> coalesce(d.n, 0);
  IF problems IS NOT NULL THEN
    RAISE EXCEPTION 'Rewind {what} aborted, nothing was changed: %', problems
      USING HINT = {quote_text(hint)};
  END IF;
END
$rewind$;
"""


# --- reversal (undo by journal) ---------------------------------------------------------------------------------


def plan_reversal(
    graph: Graph,
    deletes: dict[str, list[GraphRow]],
    *,
    guard: dict[str, tuple[str, ...]],
    header: tuple[list[str], list[str]],
    counts: dict[str, dict[str, int]],
    batch_size: int = BATCH_SIZE,
) -> Plan:
    """A script that puts rows back to earlier values, with the same machinery as a restore: MISSING rows of the
    graph are inserted (parents first, cycles broken), CHANGED rows are set back in every changed column (from
    `live_values` to `values`), and `deletes` (rows whose `values` are what live is expected to hold) are deleted,
    children first, after an unlink of any nullable foreign key that closes a cycle among them. Reverts and deletes
    are guarded on the whole row (the `guard` columns of each table).

    Its undo script (the redo) re-inserts the deleted rows, then sets reverted rows forward again and deletes the
    rows the script inserted."""
    revert = {name: set(graph.table(name).column_names) for name in graph.rows}
    layout = _lay_out(graph, revert)
    deletes = {name: rows for name, rows in deletes.items() if rows}
    refs = _inserted_refs(graph, deletes)
    order, deferred = _table_order(graph, deletes, refs)
    unlinks: list[Step] = []
    relinks: list[Step] = []
    for fk in deferred:
        if fk.deferrable:
            layout.deferred_constraints.append(fk)
            continue
        child = graph.table(fk.table)
        nullable = tuple(c for c in fk.columns if not child.column(c).not_null)
        rows = _rows_referencing(child, fk, deletes[fk.table], refs)
        if rows:
            for row in rows:
                key = (fk.table, row.key)
                layout.nulled[key] = layout.nulled.get(key, frozenset()) | frozenset(nullable)
            unlinks.append(Step(0, "unlink", child, rows, nullable))
            relinks.append(Step(0, "relink", child, rows, nullable))
    removals = [Step(0, "delete", graph.table(name), deletes[name]) for name in reversed(order)]
    reinserts = [Step(0, "insert", graph.table(name), deletes[name]) for name in order]
    layout.steps = _numbered([*layout.steps, *unlinks, *removals])
    layout.undo_steps = _numbered([*reinserts, *relinks, *layout.undo_steps])
    for step in (*layout.steps, *layout.undo_steps):
        if step.action in ("revert", "unrevert", "delete"):
            step.guard = guard.get(step.table.qualified, ())
    layout.counts = counts
    return Plan(graph, counts, None, "", layout, batch_size, header)
