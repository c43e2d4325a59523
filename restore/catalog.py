"""The shape of a database, read from pg_catalog: tables, columns, keys and foreign keys."""

from collections.abc import Iterable
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from restore.errors import RewindError

_FK_ACTIONS = {"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT"}

_TABLES = """
SELECT c.oid, n.nspname, c.relname
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%%'
  AND n.nspname NOT LIKE 'pg_temp%%'
ORDER BY n.nspname, c.relname
"""

_COLUMNS = """
SELECT a.attrelid, a.attname, format_type(a.atttypid, a.atttypmod), a.atttypid, a.attnotnull,
       a.attgenerated <> '', a.attidentity, a.atthasdef, t.typcategory
FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
WHERE a.attrelid = ANY(%s) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attrelid, a.attnum
"""

_CONSTRAINTS = """
SELECT con.conname, con.contype, con.conrelid, con.confrelid,
       ARRAY(SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY k(n, i)
             JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n ORDER BY k.i),
       ARRAY(SELECT a.attname FROM unnest(con.confkey) WITH ORDINALITY k(n, i)
             JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n ORDER BY k.i),
       con.confdeltype, con.confupdtype, con.condeferrable
FROM pg_constraint con
WHERE con.conrelid = ANY(%s) AND con.contype IN ('p', 'u', 'f')
ORDER BY con.conrelid, con.contype, con.conname
"""


class CatalogError(RewindError):
    """A table or column that the database does not have."""


@dataclass(frozen=True)
class Column:
    name: str
    type_name: str
    type_oid: int
    not_null: bool
    generated: bool
    identity: str  # '' | 'a' (ALWAYS) | 'd' (BY DEFAULT)
    has_default: bool
    category: str  # pg_type.typcategory: 'A' array, 'S' string, 'N' numeric, 'U' user (json), ...

    @property
    def insertable(self) -> bool:
        """Generated columns can't be inserted; they recompute themselves."""
        return not self.generated


@dataclass(frozen=True)
class ForeignKey:
    name: str
    table: str
    columns: tuple[str, ...]
    ref_table: str
    ref_columns: tuple[str, ...]
    on_delete: str
    on_update: str
    deferrable: bool

    @property
    def self_referencing(self) -> bool:
        return self.table == self.ref_table


@dataclass(frozen=True)
class UniqueKey:
    name: str
    columns: tuple[str, ...]
    primary: bool


@dataclass
class Table:
    schema: str
    name: str
    columns: list[Column] = field(default_factory=list)
    unique_keys: list[UniqueKey] = field(default_factory=list)
    foreign_keys: list[ForeignKey] = field(default_factory=list)

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def ident(self) -> sql.Identifier:
        return sql.Identifier(self.schema, self.name)

    @property
    def primary_key(self) -> tuple[str, ...] | None:
        return next((k.columns for k in self.unique_keys if k.primary), None)

    def column(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        raise CatalogError(f"Table {self.qualified} has no column {name!r}. Columns: {', '.join(self.column_names)}.")

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def key_columns(self, override: Iterable[str] | None = None) -> tuple[str, ...]:
        """The key rows are matched by: `override`, else the primary key, else the first unique key."""
        if override:
            cols = tuple(override)
            for name in cols:
                self.column(name)
            return cols
        if self.primary_key:
            return self.primary_key
        if self.unique_keys:
            return self.unique_keys[0].columns
        raise CatalogError(f"Table {self.qualified} has no primary or unique key; pass --key COLUMNS.")


@dataclass
class Catalog:
    tables: dict[str, Table]

    def table(self, name: str) -> Table:
        """A table by `schema.name`, or by bare name when exactly one schema has it (public preferred)."""
        if name in self.tables:
            return self.tables[name]
        bare = name.split(".")[-1].strip('"')
        matches = [t for t in self.tables.values() if t.name == bare]
        if len(matches) == 1:
            return matches[0]
        public = [t for t in matches if t.schema == "public"]
        if public:
            return public[0]
        if matches:
            names = ", ".join(t.qualified for t in matches)
            raise CatalogError(f"Table name {name!r} is ambiguous ({names}); qualify it with its schema.")
        raise CatalogError(f"No table {name!r} in this database. Check the name, e.g. public.{bare}.")

    def referencing(self, table: Table) -> list[ForeignKey]:
        """Foreign keys, in any table, that point at `table`."""
        return [fk for t in self.tables.values() for fk in t.foreign_keys if fk.ref_table == table.qualified]


def load_catalog(conn: psycopg.Connection) -> Catalog:
    rows = conn.execute(_TABLES).fetchall()
    by_oid = {oid: Table(schema=schema, name=name) for oid, schema, name in rows}
    names = {oid: t.qualified for oid, t in by_oid.items()}
    oids = list(by_oid)
    for relid, name, type_name, type_oid, not_null, generated, identity, has_def, category in conn.execute(
        _COLUMNS, (oids,)
    ):
        by_oid[relid].columns.append(
            Column(name, type_name, type_oid, not_null, generated, identity, has_def, category)
        )
    for conname, contype, relid, frelid, cols, fcols, deltype, updtype, deferrable in conn.execute(
        _CONSTRAINTS, (oids,)
    ):
        table = by_oid[relid]
        if contype == "f":
            if frelid not in names:
                continue
            table.foreign_keys.append(
                ForeignKey(
                    name=conname,
                    table=table.qualified,
                    columns=tuple(cols),
                    ref_table=names[frelid],
                    ref_columns=tuple(fcols),
                    on_delete=_FK_ACTIONS[deltype],
                    on_update=_FK_ACTIONS[updtype],
                    deferrable=deferrable,
                )
            )
        else:
            table.unique_keys.append(UniqueKey(conname, tuple(cols), primary=contype == "p"))
    for table in by_oid.values():
        table.unique_keys.sort(key=lambda k: (not k.primary, k.name))
    return Catalog({t.qualified: t for t in by_oid.values()})
