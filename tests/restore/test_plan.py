"""Plans put the graph's rows back exactly, in a safe order, guarded and asserted; their undo takes them out again."""

from datetime import UTC, datetime

import psycopg
import pytest

from restore.literals import settings_sql
from restore.meta import record_backup_time
from restore.plan import PlanError, make_plan
from tests.restore.conftest import PairFactory, execute
from tests.restore.test_graph import CYCLE, CYCLE_DATA, SHOP, SHOP_DAMAGE, SHOP_DATA
from tests.restore.test_literals import SCHEMA as TYPES_SCHEMA
from tests.restore.test_literals import VALUES as TYPE_VALUES

SHOP_TABLES = ("regions", "customers", "orders", '"Order Items"', "payments")


def snapshot(dsn: str, tables: tuple[str, ...]) -> dict[str, list[str]]:
    """Every row of `tables` as text, sorted: equal snapshots mean equal data."""
    with psycopg.connect(dsn) as conn:
        conn.execute(settings_sql())
        return {t: [r[0] for r in conn.execute(f"SELECT x::text FROM {t} x ORDER BY 1")] for t in tables}


def test_plan_restores_deleted_rows_and_reverts_chosen_columns(db_pair: PairFactory) -> None:
    backup, live = db_pair(SHOP, SHOP_DATA, SHOP_DAMAGE)
    damaged = snapshot(live, SHOP_TABLES)
    plan = make_plan(
        backup, live, "customers", [("c1",)], with_dependents=True, revert=["payments.customer_id", "referred_by"]
    )
    assert plan.counts["public.customers"] == {"insert": 1, "relink": 0, "revert": 1, "keep": 0}
    assert plan.counts["public.payments"] == {"insert": 0, "relink": 0, "revert": 3, "keep": 1}
    assert plan.counts["public.Order Items"]["insert"] == 3
    assert "OVERRIDING SYSTEM VALUE" not in plan.sql  # no payment is missing
    assert '"cents"' not in plan.sql  # generated columns are never written

    execute(live, plan.sql)
    assert snapshot(live, SHOP_TABLES) == snapshot(backup, SHOP_TABLES)

    execute(live, plan.undo_sql)
    assert snapshot(live, SHOP_TABLES) == damaged


def test_rerunning_an_applied_plan_aborts_and_changes_nothing(db_pair: PairFactory) -> None:
    backup, live = db_pair(SHOP, SHOP_DATA, SHOP_DAMAGE)
    plan = make_plan(backup, live, "customers", [("c1",)], with_dependents=True)
    execute(live, plan.sql)
    restored = snapshot(live, SHOP_TABLES)
    with pytest.raises(psycopg.errors.RaiseException, match=r"aborted, nothing was changed: step 1 .*got 0") as exc:
        execute(live, plan.sql)
    assert "applied already" in (exc.value.diag.message_hint or "")
    assert snapshot(live, SHOP_TABLES) == restored


def test_a_change_made_since_the_plan_is_never_clobbered(db_pair: PairFactory) -> None:
    backup, live = db_pair(SHOP, SHOP_DATA, SHOP_DAMAGE)
    plan = make_plan(backup, live, "customers", [("c1",)], with_dependents=True, revert=["payments.customer_id"])
    execute(live, "UPDATE payments SET customer_id = 'c2' WHERE id = 5")  # someone fixed it by hand meanwhile
    before = snapshot(live, SHOP_TABLES)
    with pytest.raises(psycopg.errors.RaiseException, match=r"revert 3 rows of public.payments \(customer_id\)"):
        execute(live, plan.sql)
    assert snapshot(live, SHOP_TABLES) == before


def test_identity_always_rows_keep_their_ids(db_pair: PairFactory) -> None:
    backup, live = db_pair(SHOP, SHOP_DATA, "DELETE FROM payments WHERE customer_id = 'c1'")
    plan = make_plan(backup, live, "payments", [(1,), (2,), (5,)], with_dependents=True)
    assert "OVERRIDING SYSTEM VALUE" in plan.sql
    execute(live, plan.sql)
    assert snapshot(live, ("payments",)) == snapshot(backup, ("payments",))


def test_header_names_counts_backup_time_and_command_without_password(db_pair: PairFactory) -> None:
    backup, live = db_pair(SHOP, SHOP_DATA, SHOP_DAMAGE)
    when = datetime(2024, 5, 1, 3, 0, tzinfo=UTC)
    with psycopg.connect(backup, autocommit=True) as conn:
        record_backup_time(conn, when)
    command = "rewind plan --live postgresql://u:s3cret@db/x --table customers"
    plan = make_plan(backup, live, "customers", [("c1",)], with_dependents=True, command=command)
    head = plan.sql.split("BEGIN;")[0]
    assert plan.backup_time == when and "backup time: 2024-05-01T03:00:00+00:00" in head
    assert "s3cret" not in plan.sql and "--table customers" in head
    assert "public.orders: insert 2, relink 0, revert 0, keep 1" in head
    assert plan.undo_sql.startswith("-- Rewind undo script")


def test_two_table_cycle_is_broken_with_a_nullable_column(db_pair: PairFactory) -> None:
    damage = "UPDATE teams SET lead_id = NULL WHERE id = 1; DELETE FROM people WHERE team_id = 1;"
    damage += "DELETE FROM teams WHERE id = 1"
    backup, live = db_pair(CYCLE, CYCLE_DATA, damage)
    damaged = snapshot(live, ("teams", "people"))
    plan = make_plan(backup, live, "teams", [(1,)], with_dependents=True, batch_size=2)
    assert plan.counts["public.teams"]["relink"] == 1
    assert [s.action for s in plan.steps] == ["insert", "insert", "relink"]
    execute(live, plan.sql)
    assert snapshot(live, ("teams", "people")) == snapshot(backup, ("teams", "people"))
    execute(live, plan.undo_sql)
    assert snapshot(live, ("teams", "people")) == damaged


STRICT_CYCLE = """
CREATE TABLE a (id int PRIMARY KEY, b_id int NOT NULL);
CREATE TABLE b (id int PRIMARY KEY, a_id int NOT NULL REFERENCES a);
INSERT INTO a VALUES (1, 1); INSERT INTO b VALUES (1, 1);
ALTER TABLE a ADD CONSTRAINT a_needs_b FOREIGN KEY (b_id) REFERENCES b {deferrable};
"""


def test_cycle_without_nullable_column_names_the_cycle(db_pair: PairFactory) -> None:
    backup, live = db_pair(STRICT_CYCLE.format(deferrable=""), "", "TRUNCATE a, b")
    with pytest.raises(PlanError, match=r"public\.a \(a_needs_b\) -> public\.b \(b_a_id_fkey\) -> public\.a"):
        make_plan(backup, live, "a", [(1,)], with_dependents=True)


def test_cycle_with_a_deferrable_constraint_defers_it(db_pair: PairFactory) -> None:
    backup, live = db_pair(STRICT_CYCLE.format(deferrable="DEFERRABLE"), "", "TRUNCATE a, b")
    plan = make_plan(backup, live, "a", [(1,)], with_dependents=True)
    assert 'SET CONSTRAINTS "public"."a_needs_b" DEFERRED' in plan.sql
    execute(live, plan.sql)
    assert snapshot(live, ("a", "b")) == snapshot(backup, ("a", "b"))


NODES = """
CREATE TABLE nodes (id int PRIMARY KEY, parent_id int REFERENCES nodes, next_id int NOT NULL);
INSERT INTO nodes SELECT i, NULLIF(i - 1, 0), i FROM generate_series(1, 9) i;  -- a chain 1 <- 2 <- ... <- 9
INSERT INTO nodes VALUES (20, 9, 21), (21, 20, 22), (22, 21, 20), (23, 22, 23);  -- a ring hanging off it
ALTER TABLE nodes ADD FOREIGN KEY (next_id) REFERENCES nodes;
"""


def test_self_references_go_parent_first_and_loops_in_one_statement(db_pair: PairFactory) -> None:
    backup, live = db_pair(NODES, "", "TRUNCATE nodes")
    plan = make_plan(backup, live, "nodes", [(1,)], with_dependents=True, batch_size=2)
    assert plan.counts["public.nodes"]["insert"] == 13
    execute(live, plan.sql)
    assert snapshot(live, ("nodes",)) == snapshot(backup, ("nodes",))
    execute(live, plan.undo_sql)
    assert snapshot(live, ("nodes",)) == {"nodes": []}


def test_every_literal_type_is_restored_exactly(db_pair: PairFactory) -> None:
    cols = ", ".join(f'"{c}"' for c in TYPE_VALUES)
    data = 'INSERT INTO "Odd Table" ("select") VALUES (2), (3);'
    backup, live = db_pair(TYPES_SCHEMA, data, 'DELETE FROM "Odd Table"')
    with psycopg.connect(backup, autocommit=True) as conn:
        marks = ", ".join(["%s"] * len(TYPE_VALUES))
        conn.execute(f'INSERT INTO "Odd Table" ("select", {cols}) VALUES (1, {marks})', list(TYPE_VALUES.values()))
    plan = make_plan(backup, live, "Odd Table", [(1,), (2,)], with_dependents=True)
    for conforming in ("off", "on"):
        execute(live, f"SET standard_conforming_strings = {conforming};\n" + plan.sql)
        restored = snapshot(live, ('"Odd Table"',))
        assert restored == {'"Odd Table"': snapshot(backup, ('"Odd Table"',))['"Odd Table"'][:2]}
        execute(live, plan.undo_sql)


def test_unknown_revert_column_says_how_to_name_it(db_pair: PairFactory) -> None:
    backup, live = db_pair(SHOP, SHOP_DATA, SHOP_DAMAGE)
    with pytest.raises(PlanError, match=r"name it as table\.column"):
        make_plan(backup, live, "customers", [("c1",)], with_dependents=True, revert=["nope"])
    with pytest.raises(PlanError, match="generated"):
        make_plan(backup, live, "customers", [("c1",)], with_dependents=True, revert=["payments.cents"])


def test_nothing_to_do_is_a_plain_empty_transaction(db_pair: PairFactory) -> None:
    backup, live = db_pair(SHOP, SHOP_DATA, "")
    plan = make_plan(backup, live, "customers", [("c1",)], with_dependents=True)
    assert plan.empty and "nothing to do" in plan.sql
    execute(live, plan.sql)
