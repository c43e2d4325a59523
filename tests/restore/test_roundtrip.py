"""Round trip as a property: random FK-linked schema and data, pg_dump, random damage, replica, plan, apply.

Afterwards every row of the graph equals its backup version, applying touched no row outside the graph (rows
added after the backup included), and the undo script brings live back to exactly how it was before the apply.
"""

import os
import random
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from psycopg import sql

from restore.apply import dry_run, execute
from restore.cluster import find_pg_bindir
from restore.keys import deleted_keys
from restore.literals import ident, settings_sql
from restore.plan import make_plan
from restore.replica import destroy, provision
from tests.pg import PgServer

TABLE_NAMES = ("accounts", "Orders", "line items", "notes")
KEY_KINDS = {"int": [("id", "int")], "text": [("code", "text")], "composite": [("a", "int"), ("b", "text")]}
ON_DELETE = ("CASCADE", "SET NULL", "NO ACTION")


@dataclass
class Fk:
    columns: list[str]
    ref: "Spec"
    on_delete: str
    nullable: bool


@dataclass
class Spec:
    name: str
    key: list[tuple[str, str]]
    fks: list[Fk] = field(default_factory=list)
    rows: list[dict[str, object]] = field(default_factory=list)

    @property
    def key_names(self) -> list[str]:
        return [c for c, _ in self.key]

    def ddl(self) -> str:
        cols = [f"{ident(c)} {t} NOT NULL" for c, t in self.key]
        constraints = [f"PRIMARY KEY ({', '.join(ident(c) for c in self.key_names)})"]
        for fk in self.fks:
            for c, (_, t) in zip(fk.columns, fk.ref.key, strict=True):
                cols.append(f"{ident(c)} {t}" + ("" if fk.nullable else " NOT NULL"))
            refs = ", ".join(ident(c) for c in fk.ref.key_names)
            constraints.append(
                f"FOREIGN KEY ({', '.join(ident(c) for c in fk.columns)}) REFERENCES {ident(fk.ref.name)} ({refs}) "
                f"ON DELETE {fk.on_delete}"
            )
        cols += ["val text", "amount numeric"]
        return f"CREATE TABLE {ident(self.name)} ({', '.join(cols + constraints)});"


def _key_value(spec: Spec, n: int) -> dict[str, object]:
    kind = {"id": "int", "code": "text", "a": "composite"}[spec.key_names[0]]
    if kind == "int":
        return {"id": n}
    if kind == "text":
        return {"code": f"k'{n}"}
    return {"a": n % 3, "b": f"b\\{n}"}


def _schema(rng: random.Random) -> list[Spec]:
    specs: list[Spec] = []
    for name in TABLE_NAMES[: rng.randint(2, 4)]:
        spec = Spec(name, KEY_KINDS[rng.choice(list(KEY_KINDS))])
        parents = [p for p in specs if rng.random() < 0.7] or specs[:1]
        if rng.random() < 0.3:
            parents.append(spec)  # a self-reference
        for parent in parents:
            # NO ACTION children of the root block its deletes; keep them rare so most examples restore something.
            weights = (5, 4, 0 if parent is spec else 1 if parent is not specs[0] else 0.3)
            on_delete = rng.choices(ON_DELETE, weights=weights)[0]
            nullable = on_delete == "SET NULL" or parent is spec or rng.random() < 0.5
            prefix = "parent" if parent is spec else f"r{TABLE_NAMES.index(parent.name)}"
            spec.fks.append(Fk([f"{prefix}_{c}" for c in parent.key_names], parent, on_delete, nullable))
        specs.append(spec)
    return specs


def _row(rng: random.Random, spec: Spec, n: int, existing: dict[str, list[dict[str, object]]]) -> dict[str, object]:
    row = _key_value(spec, n)
    for fk in spec.fks:
        candidates = spec.rows if fk.ref is spec else existing[fk.ref.name]
        parent = rng.choice(candidates) if candidates and not (fk.nullable and rng.random() < 0.2) else None
        if parent is None and not fk.nullable:
            raise ValueError("no parent")
        for c, rc in zip(fk.columns, fk.ref.key_names, strict=True):
            row[c] = parent[rc] if parent else None
    row["val"] = rng.choice(["plain", "it's", "back\\slash", None, "ünï"])
    row["amount"] = rng.choice(["0.1", "12345678901234567890.5", None, "-3"])
    return row


def _insert(conn: psycopg.Connection, spec: Spec, row: dict[str, object]) -> None:
    query = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
        sql.Identifier(spec.name),
        sql.SQL(", ").join(map(sql.Identifier, row)),
        sql.SQL(", ").join(sql.Placeholder() * len(row)),
    )
    conn.execute(query, list(row.values()))


def _populate(conn: psycopg.Connection, rng: random.Random, specs: list[Spec], first: int, count: int) -> None:
    existing = {s.name: list(s.rows) for s in specs}
    for spec in specs:
        for n in range(first, first + count):
            row = _row(rng, spec, n, existing)
            _insert(conn, spec, row)
            spec.rows.append(row)
        existing[spec.name] = list(spec.rows)


def _damage(conn: psycopg.Connection, rng: random.Random, specs: list[Spec]) -> None:
    """Repointed foreign keys, edited values, then deletes of root rows (which cascade or set null)."""
    root = specs[0]
    for spec in specs[1:]:
        for fk in spec.fks:
            if fk.ref is root and rng.random() < 0.6:
                target = rng.choice(root.rows)
                sets = sql.SQL(", ").join(
                    sql.SQL("{} = {}").format(sql.Identifier(c), sql.Literal(target[rc]))
                    for c, rc in zip(fk.columns, root.key_names, strict=True)
                )
                conn.execute(
                    sql.SQL("UPDATE {} SET {} WHERE ctid = (SELECT ctid FROM {} ORDER BY random() LIMIT 1)").format(
                        sql.Identifier(spec.name), sets, sql.Identifier(spec.name)
                    )
                )
    for spec in specs:
        conn.execute(
            sql.SQL("UPDATE {} SET val = coalesce(val, '') || ' (edited)' WHERE random() < 0.3").format(
                sql.Identifier(spec.name)
            )
        )
    for row in rng.sample(root.rows, k=rng.randint(1, max(1, len(root.rows) // 2))):
        where = sql.SQL(" AND ").join(
            sql.SQL("{} = {}").format(sql.Identifier(c), sql.Literal(row[c])) for c in root.key_names
        )
        try:
            with conn.transaction():
                conn.execute(sql.SQL("DELETE FROM {} WHERE {}").format(sql.Identifier(root.name), where))
        except psycopg.errors.ForeignKeyViolation:
            pass  # a NO ACTION child holds it


def _rows_by_key(dsn: str, specs: list[Spec]) -> dict[str, dict[tuple[str, ...], str]]:
    out: dict[str, dict[tuple[str, ...], str]] = {}
    with psycopg.connect(dsn) as conn:
        conn.execute(settings_sql())
        for spec in specs:
            keys = ", ".join(f"x.{ident(c)}::text" for c in spec.key_names)
            rows = conn.execute(f"SELECT {keys}, x::text FROM {ident(spec.name)} x").fetchall()
            out[f"public.{spec.name}"] = {tuple(r[:-1]): r[-1] for r in rows}
    return out


@pytest.fixture(scope="module")
def live_db(pg: PgServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """One live database reset per example, and a state dir for the replicas."""
    name = pg.create_database("rt")
    state = tmp_path_factory.mktemp("rewind-state")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("REWIND_STATE_DIR", str(state))
        try:
            yield pg.dsn_for(name), state
        finally:
            pg.drop_database(name)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(seed=st.integers(0, 2**32 - 1))
def test_plan_apply_round_trip(pg: PgServer, live_db: tuple[str, Path], seed: int) -> None:
    live, state = live_db
    rng = random.Random(seed)
    specs = _schema(rng)
    with psycopg.connect(live, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
        for spec in specs:
            conn.execute(spec.ddl())
        _populate(conn, rng, specs, 1, rng.randint(3, 7))
    dump = state / f"{seed}.dump"
    subprocess.run([str(find_pg_bindir("pg_dump") / "pg_dump"), "-Fc", "-f", str(dump), live], check=True)
    replica = provision(dump, server_dsn=pg.admin_dsn, name=f"rt-{uuid.uuid4().hex[:8]}")
    try:
        with psycopg.connect(live, autocommit=True) as conn:
            _populate(conn, rng, specs, 100, rng.randint(1, 2))  # rows added after the backup
            _damage(conn, rng, specs)
        _check_round_trip(replica.dsn, live, specs)
    finally:
        destroy(replica.name)
        os.unlink(dump)


def _check_round_trip(backup: str, live: str, specs: list[Spec]) -> None:
    root = specs[0]
    roots = deleted_keys(backup, live, root.name)
    revert = [f"public.{s.name}.{c}" for s in specs for fk in s.fks for c in fk.columns]
    revert += [f"public.{s.name}.{c}" for s in specs for c in ("val", "amount")]
    plan = make_plan(backup, live, root.name, roots, with_dependents=True, revert=revert)
    actions = {a for per in plan.counts.values() for a, n in per.items() if n}
    event(f"{len(specs)} tables; plan does {', '.join(sorted(actions)) or 'nothing'}")
    before = _rows_by_key(live, specs)
    rehearsal = dry_run(live, plan.sql)
    assert _rows_by_key(live, specs) == before
    execute(live, plan.sql, expected_counts=rehearsal.counts)

    after, in_backup = _rows_by_key(live, specs), _rows_by_key(backup, specs)
    graph = {(r.table, r.key) for r in plan.graph.iter_rows()}
    for table, rows in before.items():
        for key in set(rows) | set(after[table]) | {k for t, k in graph if t == table}:
            if (table, key) in graph:
                assert after[table].get(key) == in_backup[table][key], (table, key, "should equal the backup")
            else:
                assert after[table].get(key) == rows.get(key), (table, key, "was outside the graph: unchanged")
    assert all(key in after[f"public.{root.name}"] for key in {tuple(map(str, k)) for k in roots})

    execute(live, plan.undo_sql)
    assert _rows_by_key(live, specs) == before
