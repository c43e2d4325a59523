"""Benchmark: plan the restore of 100,000 missing rows across 6 FK-linked tables.

Target: the plan (graph from backup and live, classification, SQL with exact literals, undo) is written in under
10 s with under 500 MB peak memory. Each side runs in its own subprocess so ru_maxrss is its own. The baseline,
measured in the same run, is the floor for reading those rows at all: a plain `COPY (SELECT ...) TO STDOUT` of the
same rows from the backup into a file.

    .venv/bin/python bench/plan.py [--rows 100000]

Uses REWIND_BENCH_DATABASE_URL (a server where databases may be created) or else a throwaway cluster.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from restore.cluster import ThrowawayCluster

# Rows per table for 100,000 rows; scaled by --rows.
SHARES = {
    "customers": 2_000,
    "accounts": 4_000,
    "orders": 20_000,
    "order_items": 40_000,
    "payments": 20_000,
    "shipments": 14_000,
}

SCHEMA = """
CREATE TABLE customers (id bigint PRIMARY KEY, name text NOT NULL, email text, created_at timestamptz NOT NULL);
CREATE TABLE accounts (id bigint PRIMARY KEY, customer_id bigint NOT NULL REFERENCES customers ON DELETE CASCADE,
  balance numeric(14, 2) NOT NULL, kind text);
CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint NOT NULL REFERENCES customers ON DELETE CASCADE,
  account_id bigint REFERENCES accounts ON DELETE CASCADE, total numeric(14, 2), placed_at timestamptz, note text);
CREATE TABLE order_items (order_id bigint REFERENCES orders ON DELETE CASCADE, line int, sku text, qty int,
  price numeric(12, 4), PRIMARY KEY (order_id, line));
CREATE TABLE payments (id uuid PRIMARY KEY, order_id bigint NOT NULL REFERENCES orders ON DELETE CASCADE,
  amount numeric(14, 2), meta jsonb);
CREATE TABLE shipments (id bigint PRIMARY KEY, order_id bigint NOT NULL REFERENCES orders ON DELETE CASCADE,
  address text, tags text[]);
CREATE INDEX ON accounts (customer_id); CREATE INDEX ON orders (customer_id); CREATE INDEX ON orders (account_id);
CREATE INDEX ON payments (order_id); CREATE INDEX ON shipments (order_id);
"""

# Twice the customers: the first half are deleted in live (their rows are the ones to restore), the rest stay.
DATA = """
INSERT INTO customers SELECT i, 'Customer ' || i || ' O''Brien', 'c' || i || '@example.com',
  '2024-01-01 00:00:00+00'::timestamptz + i * interval '1 minute' FROM generate_series(1, 2 * %(customers)s) i;
INSERT INTO accounts SELECT i, 1 + (i - 1) %% (2 * %(customers)s), i * 1.25, CASE WHEN i %% 2 = 0 THEN 'main' END
  FROM generate_series(1, 2 * %(accounts)s) i;
INSERT INTO orders SELECT i, a.customer_id, a.id, i * 0.5, '2024-02-01 12:00:00+01'::timestamptz + i * interval '1 s',
  'note "' || i || E'" with \\\\ and ''quotes'''
  FROM generate_series(1, 2 * %(orders)s) i JOIN accounts a ON a.id = 1 + (i - 1) %% (2 * %(accounts)s);
INSERT INTO order_items SELECT 1 + (i - 1) / %(lines)s, 1 + (i - 1) %% %(lines)s, 'SKU-' || i, i %% 7, i / 3.0
  FROM generate_series(1, 2 * %(order_items)s) i;
INSERT INTO payments SELECT md5(i::text)::uuid, 1 + (i - 1) %% (2 * %(orders)s), i * 0.01,
  jsonb_build_object('i', i, 'via', 'card', 'ok', true) FROM generate_series(1, 2 * %(payments)s) i;
INSERT INTO shipments SELECT i, 1 + (i - 1) %% (2 * %(orders)s), i || ' Main St', ARRAY['fragile', 'a"b', NULL]
  FROM generate_series(1, 2 * %(shipments)s) i;
"""

BASELINE_QUERIES = {
    "customers": "SELECT * FROM customers WHERE id = ANY(%(roots)s)",
    "accounts": "SELECT * FROM accounts WHERE customer_id = ANY(%(roots)s)",
    "orders": "SELECT * FROM orders WHERE customer_id = ANY(%(roots)s)",
    **{
        name: f"SELECT x.* FROM {name} x JOIN orders o ON o.id = x.order_id WHERE o.customer_id = ANY(%(roots)s)"
        for name in ("order_items", "payments", "shipments")
    },
}


def _sizes(rows: int) -> dict[str, int]:
    scale = rows / sum(SHARES.values())
    sizes = {name: max(1, round(n * scale)) for name, n in SHARES.items()}
    sizes["lines"] = max(1, sizes["order_items"] // sizes["orders"])
    sizes["order_items"] = sizes["orders"] * sizes["lines"]
    return sizes


def _dsn_with_db(admin_dsn: str, dbname: str) -> str:
    params = psycopg.conninfo.conninfo_to_dict(admin_dsn)
    params["dbname"] = dbname
    return psycopg.conninfo.make_conninfo(**params)


def setup(admin_dsn: str, rows: int) -> tuple[str, str, list[int], list[str]]:
    """A backup database with twice the rows and a live copy missing the first half of the customers' trees."""
    sizes = _sizes(rows)
    suffix = uuid.uuid4().hex[:8]
    backup_db, live_db = f"bench_plan_backup_{suffix}", f"bench_plan_live_{suffix}"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(backup_db)))
    backup, live = _dsn_with_db(admin_dsn, backup_db), _dsn_with_db(admin_dsn, live_db)
    roots = list(range(1, sizes["customers"] + 1))
    try:
        with psycopg.connect(backup, autocommit=True) as conn:
            conn.execute(SCHEMA)
            for statement in DATA.split(";\n"):
                if statement.strip():
                    conn.execute(statement, sizes)
            conn.execute("VACUUM ANALYZE")
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            template = sql.SQL("CREATE DATABASE {} TEMPLATE {}")
            conn.execute(template.format(sql.Identifier(live_db), sql.Identifier(backup_db)))
        with psycopg.connect(live, autocommit=True) as conn:
            conn.execute("DELETE FROM customers WHERE id = ANY(%s)", (roots,))
            conn.execute("VACUUM ANALYZE")
    except BaseException:
        _drop(admin_dsn, [backup_db, live_db])
        raise
    return backup, live, roots, [backup_db, live_db]


def _drop(admin_dsn: str, databases: list[str]) -> None:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        for name in databases:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def child_plan(backup: str, live: str, roots_file: Path, out: Path) -> dict[str, object]:
    from restore.plan import make_plan

    roots = [(r,) for r in json.loads(roots_file.read_text())]
    started = time.perf_counter()
    plan = make_plan(backup, live, "customers", roots, with_dependents=True, command="bench/plan.py")
    graph_done = time.perf_counter()
    plan.write(out, out.with_suffix(".undo.sql"))
    finished = time.perf_counter()
    inserted = sum(per["insert"] for per in plan.counts.values())
    return {
        "seconds": finished - started,
        "graph_seconds": graph_done - started,
        "write_seconds": finished - graph_done,
        "rows": inserted,
        "bytes": out.stat().st_size,
        "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def child_baseline(backup: str, roots_file: Path, out: Path) -> dict[str, object]:
    roots = json.loads(roots_file.read_text())
    started = time.perf_counter()
    rows = 0
    with psycopg.connect(backup) as conn, out.open("wb") as fh:
        for query in BASELINE_QUERIES.values():
            with conn.cursor().copy(f"COPY ({query}) TO STDOUT", {"roots": roots}) as copy:
                for chunk in copy:
                    fh.write(chunk)
                    rows += bytes(chunk).count(b"\n")
    return {
        "seconds": time.perf_counter() - started,
        "rows": rows,
        "bytes": out.stat().st_size,
        "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _in_subprocess(*args: str) -> dict[str, object]:
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"child {args[0]} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000, help="missing rows to plan (default 100000)")
    parser.add_argument("--child", choices=["plan", "baseline"], help=argparse.SUPPRESS)
    parser.add_argument("--backup", help=argparse.SUPPRESS)
    parser.add_argument("--live", help=argparse.SUPPRESS)
    parser.add_argument("--roots", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "plan":
        print(json.dumps(child_plan(args.backup, args.live, args.roots, args.out)))
        return 0
    if args.child == "baseline":
        print(json.dumps(child_baseline(args.backup, args.roots, args.out)))
        return 0

    url = os.environ.get("REWIND_BENCH_DATABASE_URL")
    cluster = None if url else ThrowawayCluster().start()
    admin = url or cluster.dsn  # type: ignore[union-attr]
    try:
        return _bench(admin, args.rows)
    finally:
        if cluster:
            cluster.stop()


def _bench(admin: str, rows: int) -> int:
    started = time.perf_counter()
    backup, live, roots, databases = setup(admin, rows)
    print(f"setup: {rows} rows to restore across {len(SHARES)} tables in {time.perf_counter() - started:.1f} s")
    try:
        with tempfile.TemporaryDirectory(prefix="rewind-bench-") as tmp:
            roots_file = Path(tmp) / "roots.json"
            roots_file.write_text(json.dumps(roots))
            base_args = ("--backup", backup, "--roots", str(roots_file))
            baseline = _in_subprocess("--child", "baseline", *base_args, "--out", str(Path(tmp) / "copy.txt"))
            plan = _in_subprocess("--child", "plan", *base_args, "--live", live, "--out", str(Path(tmp) / "plan.sql"))
    finally:
        _drop(admin, databases)
    _report(plan, baseline)
    ok = plan["seconds"] < 10 and plan["maxrss_mb"] < 500 and plan["rows"] == baseline["rows"]  # type: ignore[operator]
    print("PASS" if ok else "FAIL", "(target: < 10 s, < 500 MB, every row planned)")
    return 0 if ok else 1


def _report(plan: dict[str, object], baseline: dict[str, object]) -> None:
    print(
        f"baseline COPY (SELECT ...) TO STDOUT: {baseline['rows']} rows, {baseline['seconds']:.2f} s, "
        f"{int(baseline['bytes']) / 1e6:.1f} MB out, peak RSS {baseline['maxrss_mb']:.0f} MB"
    )
    print(
        f"rewind plan: {plan['rows']} rows, {plan['seconds']:.2f} s (graph+classify {plan['graph_seconds']:.2f} s, "
        f"SQL+undo {plan['write_seconds']:.2f} s), {int(plan['bytes']) / 1e6:.1f} MB plan, "
        f"peak RSS {plan['maxrss_mb']:.0f} MB"
    )
    ratio = float(plan["seconds"]) / max(float(baseline["seconds"]), 1e-9)  # type: ignore[arg-type]
    print(f"ratio (plan / baseline time): {ratio:.1f}x")


if __name__ == "__main__":
    sys.exit(main())
