"""Benchmark: `rewind replica up` against raw pg_restore of the same items, measured side by side.

    .venv/bin/python -m bench.replica [--size-mb 1024] [--jobs 2]

Generates a database of about --size-mb with FK-linked tables (server-side INSERT ... SELECT generate_series),
dumps it with pg_dump -Fc, then times:
  1. `rewind replica up --table customers --table orders` (private cluster) vs raw `pg_restore -L` of the same items
  2. a full `rewind replica up` vs raw `pg_restore -j N`
The raw runs restore into a database of an already running cluster with the same settings, so the difference is
Rewind's own overhead plus the private cluster's start-up. Target: rewind <= 1.2 x raw + 1 s of start-up.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg import sql

from restore import dump as dp
from restore import replica as rp
from restore.cluster import ThrowawayCluster, find_pg_bindir
from restore.pgtools import run_pg

_SCHEMA = """
CREATE TABLE customers (id bigint PRIMARY KEY, email text NOT NULL UNIQUE, name text NOT NULL,
                        created_at timestamptz NOT NULL);
CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint NOT NULL REFERENCES customers(id),
                     status text NOT NULL, amount numeric(12, 2) NOT NULL, created_at timestamptz NOT NULL, note text);
CREATE INDEX orders_customer_idx ON orders (customer_id);
CREATE TABLE items (id bigint PRIMARY KEY, order_id bigint NOT NULL REFERENCES orders(id), sku text NOT NULL,
                    qty int NOT NULL, price numeric(10, 2) NOT NULL);
CREATE INDEX items_order_idx ON items (order_id);
"""
# Approximate bytes per row including indexes, to size the tables; a third of the volume each.
_ROW_BYTES = {"customers": 150, "orders": 170, "items": 120}


def generate(dsn: str, size_mb: int) -> dict[str, int]:
    rows = {table: max(1000, size_mb * 1024 * 1024 // 3 // width) for table, width in _ROW_BYTES.items()}
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(_SCHEMA)
        conn.execute(
            "INSERT INTO customers SELECT g, 'user' || g || '@example.com', md5(g::text), "
            "now() - g * interval '1 second' FROM generate_series(1, %s) g",
            (rows["customers"],),
        )
        conn.execute(
            "INSERT INTO orders SELECT g, 1 + (g::bigint * 7919) %% %s, (ARRAY['new','paid','shipped'])[1 + g %% 3], "
            "(g %% 10000) / 100.0, now() - g * interval '1 second', md5(g::text) FROM generate_series(1, %s) g",
            (rows["customers"], rows["orders"]),
        )
        conn.execute(
            "INSERT INTO items SELECT g, 1 + (g::bigint * 104729) %% %s, 'sku-' || (g %% 5000), 1 + g %% 9, "
            "(g %% 5000) / 10.0 FROM generate_series(1, %s) g",
            (rows["orders"], rows["items"]),
        )
        conn.execute("VACUUM ANALYZE")
    return rows


def timed(command: list[str], env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env=env)
    return time.perf_counter() - started


def raw_restore(cluster: ThrowawayCluster, dump: Path, args: list[str]) -> float:
    """pg_restore into a fresh database of an already running cluster (creating the database is timed too)."""
    started = time.perf_counter()
    name = f"raw_{int(time.time() * 1000)}"
    with psycopg.connect(cluster.dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))
    pg_restore = str(find_pg_bindir("pg_restore") / "pg_restore")
    dsn = cluster.dsn.rsplit("/", 1)[0] + "/" + name
    subprocess.run(
        [pg_restore, "--no-owner", "--no-privileges", "--exit-on-error", *args, "-d", dsn, str(dump)],
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


def rewind_up(dump: Path, extra: list[str], state: Path) -> float:
    env = {**os.environ, "REWIND_STATE_DIR": str(state)}
    name = f"bench-{int(time.time() * 1000)}"
    command = [sys.executable, "-m", "bot.cli", "replica", "up", str(dump), "--name", name, *extra]
    seconds = timed(command, env)
    subprocess.run([sys.executable, "-m", "bot.cli", "replica", "down", name], check=True, env=env, capture_output=True)
    return seconds


def same_items_list(dump: Path, tables: list[str], folder: Path) -> Path:
    """The -L list Rewind itself builds for `tables`, so both sides restore exactly the same items."""
    entries = dp.parse_listing(run_pg("pg_restore", "-l", str(dump)).stdout)
    dp.attach_sql(entries, run_pg("pg_restore", "-v", "-s", "-f", "-", str(dump)).stdout)
    kept = dp.keep(entries, dp.select_tables(entries, tables))
    path = folder / "same.list"
    path.write_text("".join(entry.list_line + "\n" for entry in kept))
    return path


def cluster_start_seconds() -> float:
    started = time.perf_counter()
    cluster = ThrowawayCluster()
    rp._seed_from_template(cluster)
    cluster.start()
    seconds = time.perf_counter() - started
    cluster.stop()
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rewind-bench-") as scratch, ThrowawayCluster() as cluster:
        folder = Path(scratch)
        os.chmod(folder, 0o755)
        source = cluster.dsn.rsplit("/", 1)[0] + "/source"
        with psycopg.connect(cluster.dsn, autocommit=True) as conn:
            conn.execute("CREATE DATABASE source")
        t0 = time.perf_counter()
        rows = generate(source, args.size_mb)
        with psycopg.connect(source) as conn:
            size = conn.execute("SELECT pg_size_pretty(pg_database_size(current_database()))").fetchone()[0]
        print(f"generated {size} ({rows}) in {time.perf_counter() - t0:.1f}s")
        dump = folder / "bench.dump"
        pg_dump = str(find_pg_bindir("pg_dump") / "pg_dump")
        print(f"pg_dump -Fc: {timed([pg_dump, '-Fc', '-f', str(dump), '-d', source]):.1f}s, "
              f"{dump.stat().st_size / 2**20:.0f} MiB")  # fmt: skip

        startup = cluster_start_seconds()
        print(f"private cluster start-up (template copy + start): {startup:.2f}s  target <= 1.00s  "
              f"{'MET' if startup <= 1.0 else 'MISSED'}")  # fmt: skip

        tables = ["customers", "orders"]
        items = same_items_list(dump, tables, folder)
        raw = raw_restore(cluster, dump, ["-j", str(args.jobs), "-L", str(items)])
        ours = rewind_up(dump, ["--table", tables[0], "--table", tables[1], "--jobs", str(args.jobs)], folder / "s")
        report("2 tables (--table)", ours, raw, startup)

        raw = raw_restore(cluster, dump, ["-j", str(args.jobs)])
        ours = rewind_up(dump, ["--jobs", str(args.jobs)], folder / "s")
        report("full replica", ours, raw, startup)
    return 0


def report(label: str, ours: float, raw: float, startup: float) -> None:
    allowed = 1.2 * raw + 1.0
    verdict = "MET" if ours <= allowed else "MISSED"
    print(
        f"{label:20s} rewind {ours:7.2f}s  raw pg_restore {raw:7.2f}s  ratio {ours / raw:5.2f}x  "
        f"(without start-up {(ours - startup) / raw:5.2f}x)  target <= 1.2 x raw + 1 s = {allowed:.2f}s  {verdict}"
    )


if __name__ == "__main__":
    sys.exit(main())
