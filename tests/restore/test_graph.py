"""The graph walks foreign keys both ways from root rows, set-wise, and classifies rows against live."""

import pytest

from restore.graph import GraphError, RowStatus, build_graph
from tests.restore.conftest import PairFactory

# A shop: text, composite and uuid keys, a self-reference, CASCADE and SET NULL children, identity and generated
# columns, and a mixed-case table name.
SHOP = """
CREATE TABLE regions (code text PRIMARY KEY, name text);
CREATE TABLE customers (
  id text PRIMARY KEY, region text NOT NULL REFERENCES regions, name text NOT NULL,
  referred_by text REFERENCES customers ON DELETE SET NULL);
CREATE TABLE orders (
  customer_id text REFERENCES customers ON DELETE CASCADE, n int, total numeric(12, 2), PRIMARY KEY (customer_id, n));
CREATE TABLE "Order Items" (
  id uuid PRIMARY KEY, customer_id text NOT NULL, n int NOT NULL, sku text,
  FOREIGN KEY (customer_id, n) REFERENCES orders ON DELETE CASCADE);
CREATE TABLE payments (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  customer_id text REFERENCES customers ON DELETE SET NULL, amount numeric,
  cents bigint GENERATED ALWAYS AS ((amount * 100)::bigint) STORED);
"""

SHOP_DATA = """
INSERT INTO regions VALUES ('eu', 'Europe'), ('us', 'America'), ('ap', 'Asia');
INSERT INTO customers VALUES ('c1', 'eu', 'Ada', NULL), ('c2', 'eu', 'Bob', 'c1'), ('c3', 'us', 'Cy', NULL);
INSERT INTO orders VALUES ('c1', 1, 10.50), ('c1', 2, 20.00), ('c2', 1, 5.25), ('c3', 1, 1.00);
INSERT INTO "Order Items" VALUES
  ('00000000-0000-0000-0000-000000000001', 'c1', 1, 'apple'),
  ('00000000-0000-0000-0000-000000000002', 'c1', 1, 'pear'),
  ('00000000-0000-0000-0000-000000000003', 'c1', 2, 'fig'),
  ('00000000-0000-0000-0000-000000000004', 'c2', 1, 'kiwi');
INSERT INTO payments (customer_id, amount) VALUES ('c1', 10.50), ('c1', 20.00), ('c2', 5.25), ('c3', 1.00), ('c1', 3);
"""

# An incident: payment 5 was repointed to c3, then c1 was deleted (cascading to its orders and items, nulling
# its payments and the referral from c2).
SHOP_DAMAGE = """
UPDATE payments SET customer_id = 'c3' WHERE id = 5;
DELETE FROM customers WHERE id = 'c1';
"""


def _statuses(graph) -> dict[tuple[str, tuple[str, ...]], tuple[str, tuple[str, ...]]]:
    return {(r.table, r.key): (r.status.value, r.changed_columns) for r in graph.iter_rows()}


def test_graph_finds_dependents_at_any_depth_and_their_parents(db_pair: PairFactory) -> None:
    backup, live = db_pair(SHOP, SHOP_DATA, SHOP_DAMAGE)
    graph = build_graph(backup, live, "customers", [("c1",)])
    rows = _statuses(graph)
    assert rows[("public.customers", ("c1",))] == ("missing", ())
    assert rows[("public.customers", ("c2",))] == ("changed", ("referred_by",))  # SET NULL self-reference
    assert rows[("public.orders", ("c1", "1"))] == ("missing", ())
    assert rows[("public.orders", ("c1", "2"))] == ("missing", ())
    assert rows[("public.Order Items", ("00000000-0000-0000-0000-000000000003",))] == ("missing", ())
    assert rows[("public.payments", ("1",))] == ("changed", ("customer_id",))  # SET NULL child
    assert rows[("public.payments", ("5",))] == ("changed", ("customer_id",))  # repointed to c3
    assert rows[("public.regions", ("eu",))] == ("present", ())  # a parent the inserts need
    # c2 is a dependent, so its own children come too; they are intact.
    assert rows[("public.orders", ("c2", "1"))] == ("present", ())
    assert ("public.customers", ("c3",)) not in rows and ("public.regions", ("us",)) not in rows
    counts = graph.counts()
    assert counts["public.Order Items"] == {"missing": 3, "present": 1, "changed": 0}
    assert counts["public.payments"] == {"missing": 0, "present": 1, "changed": 3}
    payment = graph.rows["public.payments"][("5",)]
    assert payment.reached_from is not None and payment.reached_from.table == "public.customers"
    assert payment.live_values is not None and payment.live_values[1] == "c3" and payment.values[1] == "c1"
    report = graph.report().model_dump()
    assert {"table", "key", "status", "changed_columns", "reached_from"} <= set(report["rows"][0])


def test_without_dependents_only_roots_and_parents(db_pair: PairFactory) -> None:
    backup, live = db_pair(SHOP, SHOP_DATA, SHOP_DAMAGE)
    graph = build_graph(backup, live, "orders", [("c1", 2)], with_dependents=False)
    assert set(_statuses(graph)) == {
        ("public.orders", ("c1", "2")),
        ("public.customers", ("c1",)),
        ("public.regions", ("eu",)),
    }


CYCLE = """
CREATE TABLE teams (id int PRIMARY KEY, lead_id int);
CREATE TABLE people (id int PRIMARY KEY, team_id int NOT NULL REFERENCES teams, manager_id int REFERENCES people);
ALTER TABLE teams ADD FOREIGN KEY (lead_id) REFERENCES people;
"""
CYCLE_DATA = """
INSERT INTO teams VALUES (1, NULL), (2, NULL);
INSERT INTO people VALUES (10, 1, NULL), (11, 1, 10), (12, 1, 11), (20, 2, NULL);
UPDATE people SET manager_id = 12 WHERE id = 10;  -- a management loop
UPDATE teams SET lead_id = 10 WHERE id = 1;
UPDATE teams SET lead_id = 20 WHERE id = 2;
"""


def test_cycles_and_self_references_terminate(db_pair: PairFactory) -> None:
    damage = "UPDATE teams SET lead_id = NULL WHERE id = 1; DELETE FROM people WHERE team_id = 1;"
    damage += "DELETE FROM teams WHERE id = 1"
    backup, live = db_pair(CYCLE, CYCLE_DATA, damage)
    graph = build_graph(backup, live, "teams", [(1,)])
    assert graph.counts() == {
        "public.teams": {"missing": 1, "present": 0, "changed": 0},
        "public.people": {"missing": 3, "present": 0, "changed": 0},
    }


def test_roots_missing_from_backup_are_reported(db_pair: PairFactory) -> None:
    backup, live = db_pair(SHOP, SHOP_DATA, SHOP_DAMAGE)
    with pytest.raises(GraphError, match="None of the 1 keys"):
        build_graph(backup, live, "customers", [("nope",)])
    graph = build_graph(backup, live, "customers", [("c1",), ("nope",)])
    assert graph.roots_not_in_backup == 1 and graph.rows["public.customers"][("c1",)].status is RowStatus.MISSING
    with pytest.raises(GraphError, match="has 1 values"):
        build_graph(backup, live, "orders", [("c1",)])


def test_lookups_are_batched(db_pair: PairFactory) -> None:
    data = (
        "INSERT INTO regions VALUES ('eu', 'Europe');"
        "INSERT INTO customers SELECT 'c' || i, 'eu', 'n' || i FROM generate_series(1, 300) i;"
        "INSERT INTO orders SELECT 'c' || i, j, i FROM generate_series(1, 300) i, generate_series(1, 3) j;"
    )
    backup, live = db_pair(SHOP, data, "DELETE FROM customers WHERE id <> 'c1'")
    roots = [(f"c{i}",) for i in range(1, 301)]
    graph = build_graph(backup, live, "customers", roots, batch_size=7)
    counts = graph.counts()
    assert counts["public.customers"] == {"missing": 299, "present": 1, "changed": 0}
    assert counts["public.orders"] == {"missing": 897, "present": 3, "changed": 0}
