"""Undo round trip as a property, on a cluster with wal_level=logical.

A random schema (a self-referencing table, and two tables in a foreign-key cycle), random data and traffic, a random
bad script of deletes, updates, repoints and inserts in several transactions, then more traffic touching some of the
same rows. The undo of the script's transactions is planned from the journal and applied. Afterwards:
- every row the script touched equals its value from before the script, unless it is reported as a conflict;
- every row that later traffic touched is reported as a conflict, and every conflict is left exactly as it was;
- a conflict that later traffic did not touch is one the foreign keys forced (a row now referenced, a parent gone);
- no row the script did not touch changed.
"""

import random
import uuid

import psycopg
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from restore.apply import dry_run, execute
from restore.journal.slot import start_capture
from restore.journal.sync import drain
from restore.journal.undo import plan_undo
from restore.literals import settings_sql
from tests.journal_cluster import drop_database
from tests.pg import PgServer
from tests.restore.journal.sinks import ListSink

TABLES = ("a", "b", "c")
ACTIONS = ("CASCADE", "SET NULL", "NO ACTION")
Snapshot = dict[tuple[str, str], tuple]


def schema(rng: random.Random) -> str:
    act = [rng.choice(ACTIONS) for _ in range(4)]
    deferrable = " DEFERRABLE" if rng.random() < 0.5 else ""
    return f"""
    CREATE TABLE a (id int PRIMARY KEY, v int, note text, parent int REFERENCES a(id) ON DELETE {act[0]});
    CREATE TABLE b (id int PRIMARY KEY, v int, a_id int REFERENCES a(id) ON DELETE {act[1]}, c_id int);
    CREATE TABLE c (id int PRIMARY KEY, v int, b_id int REFERENCES b(id) ON DELETE {act[2]});
    ALTER TABLE b ADD FOREIGN KEY (c_id) REFERENCES c(id) ON DELETE {act[3]}{deferrable};
    ALTER TABLE a REPLICA IDENTITY FULL; ALTER TABLE b REPLICA IDENTITY FULL; ALTER TABLE c REPLICA IDENTITY FULL;
    """


class Traffic:
    """Random statements, each in a savepoint so one a foreign key refuses is simply skipped."""

    def __init__(self, conn: psycopg.Connection, rng: random.Random) -> None:
        self.conn, self.rng = conn, rng
        self.next_id = {t: 1 for t in TABLES}

    def ids(self, table: str) -> list[int]:
        return [r[0] for r in self.conn.execute(f"SELECT id FROM {table} ORDER BY id")]

    def pick(self, table: str) -> int | None:
        ids = self.ids(table)
        return self.rng.choice(ids) if ids and self.rng.random() < 0.85 else None

    def try_(self, statement: str, params: tuple = ()) -> None:
        try:
            with self.conn.transaction():
                self.conn.execute(statement, params)
        except psycopg.errors.IntegrityError:
            pass

    def insert(self, table: str) -> None:
        new = self.next_id[table]
        self.next_id[table] += 1
        v = self.rng.randint(0, 9)
        if table == "a":
            self.try_(
                "INSERT INTO a VALUES (%s, %s, %s, %s)", (new, v, self.rng.choice(["x", "it's", None]), self.pick("a"))
            )
        elif table == "b":
            self.try_("INSERT INTO b VALUES (%s, %s, %s, %s)", (new, v, self.pick("a"), self.pick("c")))
        else:
            self.try_("INSERT INTO c VALUES (%s, %s, %s)", (new, v, self.pick("b")))

    def random_op(self, *, inserts: bool = True) -> None:
        table = self.rng.choice(TABLES)
        target = self.pick(table)
        kind = self.rng.choice(
            ["insert", "update", "delete", "repoint"] if inserts else ["update", "delete", "repoint"]
        )
        if kind == "insert" or target is None:
            if inserts:
                self.insert(table)
        elif kind == "update":
            self.try_(f"UPDATE {table} SET v = v + %s WHERE id = %s", (self.rng.randint(1, 5), target))
        elif kind == "delete":
            self.try_(f"DELETE FROM {table} WHERE id = %s", (target,))
        else:
            column, ref = {"a": ("parent", "a"), "b": (self.rng.choice(["a_id", "c_id"]), None), "c": ("b_id", "b")}[
                table
            ]
            ref = ref or ("a" if column == "a_id" else "c")
            self.try_(f"UPDATE {table} SET {column} = %s WHERE id = %s", (self.pick(ref), target))


def snapshot(conn: psycopg.Connection) -> Snapshot:
    return {(t, str(r[0])): r for t in TABLES for r in conn.execute(f"SELECT * FROM {t} ORDER BY id")}


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(seed=st.integers(0, 2**32 - 1))
def test_undo_round_trip(logical_pg: PgServer, seed: int) -> None:
    rng = random.Random(seed)
    name = logical_pg.create_database("undo")
    dsn = logical_pg.dsn_for(name)
    journal = f"rt{uuid.uuid4().hex[:8]}"
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(settings_sql())
            conn.execute(schema(rng))
            traffic = Traffic(conn, rng)
            for table in TABLES * rng.randint(4, 7):
                traffic.insert(table)
            started = start_capture(dsn, journal)
            for _ in range(rng.randint(3, 10)):
                traffic.random_op()
            before_script = snapshot(conn)
            bad_xids = []
            for _ in range(rng.randint(1, 3)):
                with conn.transaction():
                    bad_xids.append(int(conn.execute("SELECT txid_current() % 4294967296").fetchone()[0]))
                    for _ in range(rng.randint(1, 6)):
                        traffic.random_op()
            for _ in range(rng.randint(0, 6)):
                traffic.random_op()
            sink = ListSink()
            drain(dsn, started.slot, started.publication, sink)
            selected = [c for c in sink.changes if c.xid in bad_xids]
            if not selected:
                event("the bad script changed nothing")
                return
            first = min(c.commit_lsn for c in selected)
            later = [c for c in sink.changes if c.xid not in bad_xids and c.commit_lsn > first]
            undo = plan_undo(dsn, selected, later)
            event(f"conflicts: {min(len(undo.report.conflicts), 3)}")
            event(f"rows undone: {min(sum(sum(c.values()) for c in undo.report.counts.values()), 10) // 5 * 5}+")
            before_undo = snapshot(conn)
            script = undo.plan.sql
            execute(dsn, script, expected_counts=dry_run(dsn, script).counts)
            after_undo = snapshot(conn)
        script_rows = {(c.table.split(".")[1], k[0]) for c in selected for k in (c.key, c.old_key) if k}
        later_rows = {(c.table.split(".")[1], k[0]) for c in later for k in (c.key, c.old_key) if k}
        conflicts = {(c.table.split(".")[1], c.key[0]): c for c in undo.report.conflicts}
        for row in script_rows:
            if row in conflicts:
                assert after_undo.get(row) == before_undo.get(row), f"conflict {row} was changed"
            else:
                assert after_undo.get(row) == before_script.get(row), f"{row} not restored"
        for row in script_rows & later_rows:
            assert row in conflicts, f"{row} touched later but not reported"
        for row, conflict in conflicts.items():
            if row not in later_rows:
                assert conflict.reason.startswith(("referenced since", "needs", "changed since")), conflict
        untouched = (set(before_undo) | set(after_undo)) - script_rows
        assert {r: after_undo.get(r) for r in untouched} == {r: before_undo.get(r) for r in untouched}
    finally:
        drop_database(logical_pg, name)
