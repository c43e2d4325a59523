"""Undo by transaction: from journal changes to one guarded SQL script (and its redo), written by the restore planner.

Per row, the chosen transactions' net effect is taken: its value before the first of them and after the last.
  before and after  -> set the changed columns back        (a revert)
  before, no after  -> insert it again, keys included        (an insert)
  after, no before  -> delete it                             (a delete)
A row is left alone and reported as a conflict, with both values, when live no longer holds what the transactions
left (someone changed, deleted or re-created it since), when a later transaction in the journal touched it, when a
row to delete is now referenced by a row that stays, or when a row to put back needs a parent that is gone.
Every statement is guarded by the whole row the transactions left behind, so a change made between planning and
running is never clobbered either: the script's row-count assertion aborts it instead.
"""

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from pydantic import BaseModel

from restore.catalog import Catalog, CatalogError, Table, load_catalog
from restore.graph import Graph, GraphRow, RowStatus, fetch_rows
from restore.journal.chunks import Change, Row
from restore.plan import Plan, plan_reversal
from restore.snapshot import Side, as_target, read_only_snapshot
from restore.targets import TargetRole, mask_dsn

RowKey = tuple[str, tuple[str | None, ...]]


class Conflict(BaseModel):
    table: str
    key: list[Any]
    reason: str
    expected: dict[str, Any] | None  # what the undone transactions left (None: no row)
    live: dict[str, Any] | None  # what live holds now (None: no row)


class Truncation(BaseModel):
    table: str
    xid: int


class UndoReport(BaseModel):
    counts: dict[str, dict[str, int]]  # table -> insert / update / delete
    conflicts: list[Conflict]
    truncated: list[Truncation]  # TRUNCATEd tables: their rows are not in the journal and are not put back
    unkeyed_changes: int  # changes of tables without a key, which undo cannot address
    notes: list[str]


@dataclass
class UndoPlan:
    plan: Plan
    report: UndoReport


@dataclass
class _Net:
    table: str
    before: Row | None
    after: Row | None
    before_key: tuple[str | None, ...] | None
    after_key: tuple[str | None, ...] | None
    xids: set[int] = field(default_factory=set)


def plan_undo(
    live: Side,
    selected: Iterable[Change],
    later: Iterable[Change] = (),
    *,
    renames: Mapping[str, Mapping[str, str]] | None = None,
    last_columns: Mapping[str, tuple[Sequence[str], Sequence[int]]] | None = None,
    title: str = "",
    command: str = "",
) -> UndoPlan:
    """The script reversing `selected` (changes in commit order) on `live`. `later` are changes of transactions
    not undone that committed after the first selected one: rows they touch are conflicts.

    `renames` maps, per table, column names the journal saw earlier to the last names it saw; `last_columns` are
    the last column names and type oids the journal saw, matched against live to catch renames made since."""
    net: dict[RowKey, _Net] = {}
    truncated: list[Truncation] = []
    unkeyed = 0
    xids: set[int] = set()
    with read_only_snapshot(live, TargetRole.PRODUCTION) as (_, conn):
        catalog = load_catalog(conn)
        names = _live_names(catalog, renames or {}, last_columns or {})
        for change in selected:
            xids.add(change.xid)
            if change.op == "truncate":
                truncated.append(Truncation(table=change.table, xid=change.xid))
                continue
            if change.key is None:
                unkeyed += 1
                continue
            _fold(net, change, names.get(change.table, {}))
        touched: dict[RowKey, int] = {}
        for change in later:
            for key in (change.key, change.old_key):
                if key is not None:
                    touched.setdefault((change.table, tuple(key)), change.xid)
        planner = _Planner(conn, catalog, net, touched)
        planner.classify()
        planner.check_references()
    counts = planner.counts()
    header = _header(
        title, command, counts, planner.conflicts, truncated, sorted(xids), as_target(live, TargetRole.PRODUCTION).name
    )
    graph, deletes, guard = planner.graph()
    plan = plan_reversal(graph, deletes, guard=guard, header=header, counts=counts)
    report = UndoReport(
        counts=counts,
        conflicts=planner.conflicts,
        truncated=truncated,
        unkeyed_changes=unkeyed,
        notes=planner.notes,
    )
    return UndoPlan(plan, report)


def _fold(net: dict[RowKey, _Net], change: Change, rename: Mapping[str, str]) -> None:
    """Adds one change to its row's net effect. A row is followed across an update of its key."""
    old = _renamed(change.old, rename)
    new = _renamed(change.new, rename)
    key = tuple(change.key or ())
    if change.op == "insert":
        entry = net.get((change.table, key))
        if entry is None:
            entry = net[(change.table, key)] = _Net(change.table, None, None, None, None)
        entry.after, entry.after_key = new, key
    elif change.op == "update":
        previous = tuple(change.old_key) if change.old_key is not None else key
        entry = net.pop((change.table, previous), None)
        if entry is None:
            entry = _Net(change.table, old, None, previous, None)
        entry.after, entry.after_key = new, key
        net[(change.table, key)] = entry
    else:  # delete
        entry = net.get((change.table, key))
        if entry is None:
            entry = net[(change.table, key)] = _Net(change.table, old, None, key, None)
        entry.after, entry.after_key = None, None
    entry.xids.add(change.xid)


def _live_names(
    catalog: Catalog,
    renames: Mapping[str, Mapping[str, str]],
    last_columns: Mapping[str, tuple[Sequence[str], Sequence[int]]],
) -> dict[str, dict[str, str]]:
    """Per table, every column name the journal saw -> its name in live. A rename made after the journal last saw
    the table shows as the same types in the same places under other names (added columns come last)."""
    mapping: dict[str, dict[str, str]] = {t: dict(m) for t, m in renames.items()}
    for name, (columns, types) in last_columns.items():
        table = catalog.tables.get(name)
        if table is None or len(table.columns) < len(columns):
            continue
        live = table.columns[: len(columns)]
        if [c.type_oid for c in live] != list(types):
            continue
        moved = {old: c.name for old, c in zip(columns, live, strict=True) if old != c.name}
        if moved:
            table_map = mapping.setdefault(name, {})
            for earlier, latest in list(table_map.items()):
                table_map[earlier] = moved.get(latest, latest)
            for old, new in moved.items():
                table_map.setdefault(old, new)
    return mapping


def _renamed(row: Row | None, rename: Mapping[str, str]) -> Row | None:
    if row is None or not rename:
        return row
    return {rename.get(c, c): v for c, v in row.items()}


class _Planner:
    def __init__(
        self, conn: psycopg.Connection, catalog: Catalog, net: dict[RowKey, _Net], touched: dict[RowKey, int]
    ) -> None:
        self.conn, self.catalog, self.net, self.touched = conn, catalog, net, touched
        self.conflicts: list[Conflict] = []
        self.notes: list[str] = []
        self.inserts: dict[str, dict[tuple, _Net]] = defaultdict(dict)  # by before key
        self.reverts: dict[str, dict[tuple, _Net]] = defaultdict(dict)  # by after key
        self.deletes: dict[str, dict[tuple, _Net]] = defaultdict(dict)  # by after key
        self.live_rows: dict[RowKey, Row] = {}
        self.tables: dict[str, Table] = {}

    # -- which rows, and conflicts with live ---------------------------------------------------------------------

    def classify(self) -> None:
        by_table: dict[str, list[_Net]] = defaultdict(list)
        for entry in self.net.values():
            if entry.before is None and entry.after is None:
                continue  # created and deleted again by the undone transactions: nothing to do
            by_table[entry.table].append(entry)
        for name, entries in sorted(by_table.items()):
            try:
                table = self.catalog.table(name)
            except CatalogError:
                self.notes.append(f"{name} is not in live any more: its {len(entries)} changed rows are left out.")
                continue
            self.tables[name] = table
            columns = set(table.column_names)
            dropped = {c for e in entries for r in (e.before, e.after) if r for c in r} - columns
            if dropped:
                self.notes.append(f"{name}: columns {', '.join(sorted(dropped))} no longer exist and are left out.")
            lookups = [e.after_key if e.after is not None else e.before_key for e in entries]
            live = self._live(table, lookups)
            for entry, lookup in zip(entries, lookups, strict=True):
                self._classify(table, entry, lookup, live.get(lookup))

    def _live(self, table: Table, keys: Sequence[tuple | None]) -> dict[tuple, Row]:
        names = table.column_names
        key_idx = [names.index(c) for c in table.key_columns()]
        wanted = [k for k in dict.fromkeys(keys) if k is not None]
        found = {}
        for values in fetch_rows(self.conn, table, table.key_columns(), wanted):
            row = dict(zip(names, values, strict=True))
            key = tuple(values[i] for i in key_idx)
            found[key] = row
            self.live_rows[(table.qualified, key)] = row
        return found

    def _classify(self, table: Table, entry: _Net, lookup: tuple | None, live: Row | None) -> None:
        key = list(lookup or ())
        later = self.touched.get((entry.table, lookup)) if lookup else None
        if later is None and entry.before_key and entry.before_key != lookup:
            later = self.touched.get((entry.table, entry.before_key))
        if later is not None:
            self._conflict(entry, key, f"changed since by transaction {later}", live)
            return
        if entry.after is not None:
            if live is None:
                self._conflict(entry, key, "deleted since", None)
                return
            differs = [c for c, v in entry.after.items() if c in live and live[c] != v]
            if differs:
                self._conflict(entry, key, f"changed since ({', '.join(differs)})", live)
                return
        elif live is not None:
            self._conflict(entry, key, "a row with this key was created since", live)
            return
        if entry.before is None:
            self.deletes[table.qualified][entry.after_key] = entry
        elif entry.after is None:
            self.inserts[table.qualified][entry.before_key] = entry
        elif any(entry.before.get(c) != v for c, v in entry.after.items() if c in entry.before):
            self.reverts[table.qualified][entry.after_key] = entry

    def _conflict(self, entry: _Net, key: list, reason: str, live: Row | None) -> None:
        self.conflicts.append(Conflict(table=entry.table, key=key, reason=reason, expected=entry.after, live=live))

    # -- foreign keys: what a delete would break, what an insert or revert needs --------------------------------

    def check_references(self) -> None:
        """Drops (as conflicts) deletes of rows that rows staying in live reference, and inserts or reverts whose
        parents will not be there; repeated until nothing changes, since one dropped row can strand another."""
        while self._check_deletes() | self._check_parents():
            pass

    def _check_deletes(self) -> bool:
        dropped = False
        for name, rows in list(self.deletes.items()):
            table = self.tables[name]
            for fk in self.catalog.referencing(table):
                if not rows:
                    break
                child = self.catalog.tables[fk.table]
                values = {tuple(e.after.get(c) for c in fk.ref_columns): k for k, e in rows.items()}
                wanted = [v for v in values if None not in v]
                names = child.column_names
                key_idx = [names.index(c) for c in child.key_columns()]
                fk_idx = [names.index(c) for c in fk.columns]
                for found in fetch_rows(self.conn, child, fk.columns, wanted):
                    child_key = tuple(found[i] for i in key_idx)
                    if self._goes_away(child, child_key, fk.columns, tuple(found[i] for i in fk_idx)):
                        continue
                    parent_key = values.get(tuple(found[i] for i in fk_idx))
                    entry = rows.pop(parent_key, None) if parent_key is not None else None
                    if entry is not None:
                        dropped = True
                        reason = f"referenced since by {child.qualified} {list(child_key)}"
                        self._conflict(entry, list(parent_key), reason, self.live_rows.get((name, parent_key)))
        return dropped

    def _goes_away(self, child: Table, key: tuple, columns: Sequence[str], current: tuple) -> bool:
        """Whether this undo deletes the referencing row, or sets its reference to something else."""
        name = child.qualified
        if key in self.deletes.get(name, {}):
            return True
        entry = self.reverts.get(name, {}).get(key)
        return entry is not None and tuple(entry.before.get(c) for c in columns) != current  # type: ignore[union-attr]

    def _check_parents(self) -> bool:
        dropped = False
        for kind in (self.inserts, self.reverts):
            for name, rows in list(kind.items()):
                table = self.tables[name]
                for fk in table.foreign_keys:
                    parent = self.catalog.tables[fk.ref_table]
                    needed: dict[tuple, list[tuple]] = defaultdict(list)
                    for k, e in rows.items():
                        value = tuple(e.before.get(c) for c in fk.columns)  # type: ignore[union-attr]
                        if None not in value and (kind is self.inserts or value != _pick(e.after, fk.columns)):
                            needed[value].append(k)
                    if not needed:
                        continue
                    present = self._parents_present(parent, fk.ref_columns, list(needed))
                    for value, keys in needed.items():
                        if value in present:
                            continue
                        for k in keys:
                            entry = rows.pop(k)
                            dropped = True
                            reason = f"needs {parent.qualified} {list(value)}, which is gone and not put back"
                            self._conflict(entry, list(k), reason, self.live_rows.get((name, entry.after_key or k)))
        return dropped

    def _parents_present(self, parent: Table, columns: Sequence[str], values: list[tuple]) -> set[tuple]:
        """Referenced values that will exist once the script ran: in live and not deleted, or inserted by it."""
        name = parent.qualified
        names = parent.column_names
        idx = [names.index(c) for c in columns]
        key_idx = [names.index(c) for c in parent.key_columns()]
        present = set()
        deleted = self.deletes.get(name, {})
        for found in fetch_rows(self.conn, parent, columns, values):
            if tuple(found[i] for i in key_idx) not in deleted:
                present.add(tuple(found[i] for i in idx))
        for e in self.inserts.get(name, {}).values():
            present.add(tuple(e.before.get(c) for c in columns))  # type: ignore[union-attr]
        for e in self.reverts.get(name, {}).values():
            present.add(tuple(e.before.get(c) for c in columns))  # type: ignore[union-attr]
        return present

    # -- the graph the planner writes ------------------------------------------------------------------------------

    def counts(self) -> dict[str, dict[str, int]]:
        counts: dict[str, dict[str, int]] = {}
        for kind, rows in (("insert", self.inserts), ("update", self.reverts), ("delete", self.deletes)):
            for name, entries in rows.items():
                if entries:
                    counts.setdefault(name, {"insert": 0, "update": 0, "delete": 0})[kind] = len(entries)
        return dict(sorted(counts.items()))

    def graph(self) -> tuple[Graph, dict[str, list[GraphRow]], dict[str, tuple[str, ...]]]:
        """Tables cut down to the columns the journal knows (the rest keep their defaults on insert), the rows to
        insert (MISSING) and revert (CHANGED), the rows to delete, and each table's whole-row guard columns."""
        tables: dict[str, Table] = {}
        guard: dict[str, tuple[str, ...]] = {}
        for name, table in self.tables.items():
            entries = [
                *self.inserts.get(name, {}).values(),
                *self.reverts.get(name, {}).values(),
                *self.deletes.get(name, {}).values(),
            ]
            if not entries:
                continue
            known = {c for e in entries for r in (e.before, e.after) if r for c in r}
            cols = [c for c in table.columns if c.name in known]
            kept = {c.name for c in cols}
            tables[name] = Table(
                table.schema,
                table.name,
                cols,
                table.unique_keys,
                [fk for fk in table.foreign_keys if all(c in kept for c in fk.columns)],
            )
            after_rows = [e.after for e in entries if e.after is not None]
            guard[name] = tuple(c.name for c in cols if all(c.name in r for r in after_rows))
        graph = Graph(catalog=Catalog(tables), root_table=next(iter(tables), ""))
        deletes: dict[str, list[GraphRow]] = {}
        for name, table in tables.items():
            names = table.column_names
            rows = graph.rows.setdefault(name, {})
            for key, e in self.inserts.get(name, {}).items():
                rows[key] = GraphRow(name, key, _values(e.before, names), None, RowStatus.MISSING)
            for key, e in self.reverts.get(name, {}).items():
                before, after = _values(e.before, names), _values(e.after, names)
                changed = tuple(c for c, b, a in zip(names, before, after, strict=True) if b != a)
                rows[key] = GraphRow(name, key, before, None, RowStatus.CHANGED, changed, after)
            deletes[name] = [
                GraphRow(name, key, _values(e.after, names), None, RowStatus.PRESENT)
                for key, e in self.deletes.get(name, {}).items()
            ]
        return graph, deletes, guard


def _values(row: Row | None, names: Sequence[str]) -> tuple[str | None, ...]:
    return tuple(map((row or {}).get, names))


def _pick(row: Row | None, columns: Sequence[str]) -> tuple | None:
    return None if row is None else tuple(row.get(c) for c in columns)


def _header(
    title: str,
    command: str,
    counts: dict[str, dict[str, int]],
    conflicts: list[Conflict],
    truncated: list[Truncation],
    xids: list[int],
    live: str,
) -> tuple[list[str], list[str]]:
    lines = [
        f"transactions: {', '.join(str(x) for x in xids) or 'none'}",
        f"live: {live}",
        f"made by: {' '.join(mask_dsn(command).split()) or '(library call)'}",
        "rows per table (insert, update, delete):",
        *(f"  {t}: insert {c['insert']}, update {c['update']}, delete {c['delete']}" for t, c in counts.items()),
        f"conflicts left as they are: {len(conflicts)} (rows changed since; see rewind undo --json)",
    ]
    lines += [f"TRUNCATE of {t.table} in transaction {t.xid}: its rows are not in the journal" for t in truncated]
    forward = [f"Rewind undo {title}".strip(), *lines]
    forward += ["One transaction. Every statement is guarded by the whole row the transactions left behind and the",
                "row counts are asserted: a row changed since makes the script abort and change nothing."]  # fmt: skip
    redo = [f"Rewind redo (reverses the undo) {title}".strip(), *lines]
    return forward, redo
