"""What the backup cannot give back: live rows created after the backup that reference the affected rows, and ids a
migration log names that the backup lacks. The Slack layer raises each as a yellow flag.

Foreign keys are followed to any depth: the children in live of the affected rows, their children, and so on (each
row once, so cycles end). Every row found that was created after the backup is listed with the row it references
and its depth, whether its parent is itself new or was in the backup: a grandchild created after the backup of a
child the backup has is still data only live holds.
"""

from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from pydantic import BaseModel, Field

from restore.catalog import Catalog, CatalogError, ForeignKey, Table, load_catalog
from restore.errors import RewindError
from restore.keys import deleted_keys
from restore.meta import backup_time_of
from restore.snapshot import Side, read_only_snapshot
from restore.targets import TargetRole

DEFAULT_CREATED_COLUMN = "created_at"
BATCH = 1000


class GapError(RewindError):
    """A gap question that cannot be answered as asked (no backup time, ids that do not fit the key)."""


class RootRef(BaseModel):
    table: str
    key: list[Any]


class GapRow(BaseModel):
    table: str
    key: list[Any]
    created_at: Any
    references: RootRef  # the row it references: an affected row at depth 1, a row found one level up deeper
    depth: int = 1


class GapResult(BaseModel):
    backup_time: datetime
    created_after_backup: list[GapRow]
    ids_not_in_backup: list[Any]
    counts: dict[str, int]
    # Child tables without the created column: nothing can be said about them. Not part of the JSON contract.
    unchecked_tables: list[str] = Field(default_factory=list, exclude=True)


def find_gap(
    backup: Side,
    live: Side,
    table: str,
    *,
    keys: Sequence[Sequence[Any]] | None = None,
    where: str | None = None,
    created_column: str = DEFAULT_CREATED_COLUMN,
    ids: Sequence[Sequence[Any]] | None = None,
    backup_time: datetime | None = None,
) -> GapResult:
    """Gap for root rows `keys` of `table` (default: the rows deleted since the backup, optionally `where`)."""
    with read_only_snapshot(backup, TargetRole.BACKUP, error=GapError) as (b_target, b_conn):
        when = backup_time or backup_time_of(b_conn)
        if when is None:
            raise GapError(
                f"{b_target.name} has no recorded backup time (it was not provisioned by Rewind); "
                "pass --backup-time, e.g. --backup-time 2026-01-22T04:00:00Z."
            )
        b_table = _table(load_catalog(b_conn), table, b_target.name)
        missing_ids = _ids_not_in(b_conn, b_table, ids) if ids else []
        roots = [tuple(k) for k in keys] if keys is not None else deleted_keys(backup, live, table, where)
        root_refs = _RootRefs(b_conn, b_table, roots)
        with read_only_snapshot(live, TargetRole.PRODUCTION, error=GapError) as (l_target, l_conn):
            catalog = load_catalog(l_conn)
            l_table = _table(catalog, table, l_target.name)
            created, checked, unchecked = _walk(l_conn, catalog, l_table, root_refs, created_column, when)
    created.sort(key=lambda r: (r.depth, r.table, str(r.created_at)))
    counts = {
        "roots": len(roots),
        "referencing_tables": len(checked),
        "unchecked_tables": len(unchecked),
        "created_after_backup": len(created),
        "ids_checked": len(ids or []),
        "ids_not_in_backup": len(missing_ids),
    }
    return GapResult(
        backup_time=when,
        created_after_backup=created,
        ids_not_in_backup=missing_ids,
        counts=counts,
        unchecked_tables=unchecked,
    )


def _table(catalog: Catalog, name: str, label: str) -> Table:
    try:
        return catalog.table(name)
    except CatalogError as exc:
        raise GapError(f"{label}: {exc}") from exc


def _typed_arrays(table: Table, columns: Sequence[str]) -> sql.Composable:
    """`unnest(%s::t1[], %s::t2[], ...)`: parameters sent as text arrays, cast to the columns' own types."""
    casts = [sql.SQL("(%s::text[])::{}[]").format(sql.SQL(table.column(c).type_name)) for c in columns]
    return sql.SQL("unnest({})").format(sql.SQL(", ").join(casts))


def _text_columns(values: Sequence[Sequence[Any]], width: int) -> list[list[str | None]]:
    return [[None if v[i] is None else str(v[i]) for v in values] for i in range(width)]


class _RootRefs:
    """Maps the values a foreign key references (some unique key of the root table) back to the root's key."""

    def __init__(self, conn: psycopg.Connection, table: Table, roots: list[tuple[Any, ...]]) -> None:
        self.conn, self.table, self.roots = conn, table, roots
        self.key = table.key_columns()

    def by_columns(self, columns: tuple[str, ...]) -> dict[tuple[str, ...], list[Any]]:
        """{referenced values as text: root key}, read from the backup (deleted roots exist only there)."""
        found: dict[tuple[str, ...], list[Any]] = {}
        for start in range(0, len(self.roots), BATCH):
            batch = self.roots[start : start + BATCH]
            query = sql.SQL("SELECT {ref}, {key} FROM {t} WHERE ({key}) IN (SELECT * FROM {arrays})").format(
                ref=sql.SQL(", ").join(sql.SQL("({})::text").format(sql.Identifier(c)) for c in columns),
                key=sql.SQL(", ").join(sql.Identifier(c) for c in self.key),
                t=self.table.ident,
                arrays=_typed_arrays(self.table, self.key),
            )
            for row in self.conn.execute(query, _text_columns(batch, len(self.key))):
                found[tuple(row[: len(columns)])] = list(row[len(columns) :])
        return found


RefMap = Callable[[tuple[str, ...]], dict[tuple[str, ...], list[Any]]]


@dataclass
class _Found:
    key: list[Any]
    created: Any
    parent_refs: tuple[str, ...]  # the foreign key's values (as text) that led here
    values: dict[str, str | None]  # columns other rows reference, as text


def _walk(
    conn: psycopg.Connection, catalog: Catalog, root: Table, roots: _RootRefs, created_column: str, when: datetime
) -> tuple[list[GapRow], set[str], list[str]]:
    """Rows in live that reference the roots, at any depth, breadth first; the ones created after `when`."""
    created: list[GapRow] = []
    checked: set[str] = set()
    unchecked: set[str] = set()
    seen: set[tuple[str, tuple[str, ...]]] = set()
    level: list[tuple[Table, RefMap]] = [(root, roots.by_columns)]
    depth = 0
    while level:
        depth += 1
        following: dict[str, list[_Found]] = defaultdict(list)
        for parent, refs_of in level:
            for fk in catalog.referencing(parent):
                child = catalog.tables[fk.table]
                has_created = created_column in child.column_names
                (checked if has_created else unchecked).add(child.qualified)
                refs = refs_of(fk.ref_columns)
                if not refs:
                    continue
                for found in _referencing(conn, fk, child, created_column if has_created else None, catalog, refs):
                    marker = (child.qualified, tuple(str(k) for k in found.key))
                    if marker in seen:
                        continue
                    seen.add(marker)
                    following[child.qualified].append(found)
                    if has_created and found.created is not None and found.created > when:
                        created.append(
                            GapRow(
                                table=child.qualified,
                                key=found.key,
                                created_at=found.created,
                                references=RootRef(table=parent.qualified, key=refs[found.parent_refs]),
                                depth=depth,
                            )
                        )
        level = [(catalog.tables[name], _ref_map(rows)) for name, rows in following.items()]
    return created, checked, sorted(unchecked - checked)


def _ref_map(rows: list[_Found]) -> RefMap:
    def refs(columns: tuple[str, ...]) -> dict[tuple[str, ...], list[Any]]:
        found: dict[tuple[str, ...], list[Any]] = {}
        for row in rows:
            value = tuple(row.values.get(c) for c in columns)
            if None not in value:
                found[value] = row.key  # type: ignore[index]
        return found

    return refs


def _referencing(
    conn: psycopg.Connection,
    fk: ForeignKey,
    child: Table,
    created_column: str | None,
    catalog: Catalog,
    refs: dict[tuple[str, ...], list[Any]],
) -> Iterator[_Found]:
    """Rows of `child` whose foreign key `fk` points at one of `refs`, with what the next level needs."""
    try:
        child_key = child.key_columns()
    except CatalogError:
        child_key = fk.columns  # no key: the referencing columns are the best handle there is
    needed = sorted({c for other in catalog.referencing(child) for c in other.ref_columns})
    values = list(refs)
    width = len(fk.columns)
    for start in range(0, len(values), BATCH):
        batch = values[start : start + BATCH]
        query = sql.SQL(
            "SELECT {fk_text}, {created}, {key}{needed} FROM {t} WHERE ({fk_cols}) IN (SELECT * FROM {arrays})"
        ).format(
            fk_text=sql.SQL(", ").join(sql.SQL("({})::text").format(sql.Identifier(c)) for c in fk.columns),
            created=sql.Identifier(created_column) if created_column else sql.SQL("NULL"),
            key=sql.SQL(", ").join(sql.Identifier(c) for c in child_key),
            needed=sql.SQL("").join(sql.SQL(", ({})::text").format(sql.Identifier(c)) for c in needed),
            t=child.ident,
            fk_cols=sql.SQL(", ").join(sql.Identifier(c) for c in fk.columns),
            arrays=_typed_arrays(child, fk.columns),
        )
        key_end = width + 1 + len(child_key)
        for row in conn.execute(query, _text_columns(batch, width)):
            yield _Found(
                key=list(row[width + 1 : key_end]),
                created=row[width],
                parent_refs=tuple(row[:width]),
                values=dict(zip(needed, row[key_end:], strict=True)),
            )


def _ids_not_in(conn: psycopg.Connection, table: Table, ids: Sequence[Sequence[Any]]) -> list[Any]:
    """The ids (values of the table's key) that the backup has no row for, in the order given."""
    key = table.key_columns()
    if any(len(i) != len(key) for i in ids):
        raise GapError(f"Each id must have {len(key)} value(s), one per key column ({', '.join(key)}).")
    names = [f"k{i}" for i in range(len(key))]
    query = sql.SQL(
        "SELECT ids.ord FROM {arrays} WITH ORDINALITY AS ids({names}, ord) "
        "WHERE NOT EXISTS (SELECT 1 FROM {t} AS src WHERE ({key}) = ({id_cols}))"
    ).format(
        arrays=_typed_arrays(table, key),
        names=sql.SQL(", ").join(sql.Identifier(n) for n in names),
        t=table.ident,
        key=sql.SQL(", ").join(sql.Identifier("src", c) for c in key),
        id_cols=sql.SQL(", ").join(sql.Identifier("ids", n) for n in names),
    )
    missing: list[Any] = []
    for start in range(0, len(ids), BATCH):
        batch = ids[start : start + BATCH]
        try:
            rows = conn.execute(query, _text_columns(batch, len(key))).fetchall()
        except psycopg.errors.DataError as exc:
            raise GapError(f"An id does not fit {table.qualified}'s key ({', '.join(key)}): {exc}") from exc
        missing += [batch[ord_ - 1][0] if len(key) == 1 else list(batch[ord_ - 1]) for (ord_,) in rows]
    return missing
