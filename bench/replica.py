"""Benchmark: `rewind replica up` against raw pg_restore, psql and pg_dump of the same items, side by side.

    .venv/bin/python -m bench.replica [--size-mb 1024] [--jobs 2] [--quick]

Generates a database of about --size-mb with FK-linked tables (server-side INSERT ... SELECT generate_series) in the
`postgres` database of a cluster, as on Supabase, dumps it with pg_dump -Fc and with pg_dumpall | gzip, then times:
  1. `rewind replica up --table customers --table orders` (private cluster) vs raw `pg_restore -L` of the same items
  2. a full `rewind replica up` vs raw `pg_restore -j N`
     The raw runs restore into a database of an already running cluster with the same settings, so the difference
     is Rewind's own overhead plus the private cluster's start-up. Target: rewind <= 1.2 x raw + 1 s of start-up.
  3. the gzipped cluster dump: `rewind replica up FILE --table customers` and a whole `rewind replica up FILE`
     against `gunzip -c FILE | psql -f -` of the same file into a fresh running cluster (both inflate with pigz
     when it is installed, else gzip).
     Targets: --table <= 0.3 x the psql load; whole <= 1.2 x it.
  4. `rewind replica up --from SOURCE --table customers --table orders` against raw `pg_dump -Fd -j N` plus
     `pg_restore -j N` of the same tables. Target: <= 1.2 x raw + 1 s.
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
from restore.clusterdump import decompressor
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
# Approximate bytes per row including indexes, to size the tables, and each table's share of the volume: the
# customers a restore asks for are a small part of the database, the line items most of it, as usual.
_ROW_BYTES = {"customers": 150, "orders": 170, "items": 120}
_SHARE = {"customers": 0.15, "orders": 0.35, "items": 0.5}


def generate(dsn: str, size_mb: int) -> dict[str, int]:
    rows = {
        table: max(1000, int(size_mb * 1024 * 1024 * _SHARE[table]) // width) for table, width in _ROW_BYTES.items()
    }
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


def rewind_up(dump: Path | None, extra: list[str], state: Path) -> float:
    env = {**os.environ, "REWIND_STATE_DIR": str(state)}
    name = f"bench-{int(time.time() * 1000)}"
    command = [sys.executable, "-m", "bot.cli", "replica", "up", *([str(dump)] if dump else []), "--name", name, *extra]
    seconds = timed(command, env)
    previous = os.environ.get("REWIND_STATE_DIR")
    os.environ["REWIND_STATE_DIR"] = str(state)  # dropped in-process: a second CLI start-up per run buys nothing
    try:
        rp.destroy(name)
    finally:
        if previous is None:
            del os.environ["REWIND_STATE_DIR"]
        else:
            os.environ["REWIND_STATE_DIR"] = previous
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
    parser.add_argument("--quick", action="store_true", help="16 MB: proves every figure still runs (CI)")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    if args.quick:
        args.size_mb = 16
    with tempfile.TemporaryDirectory(prefix="rewind-bench-") as scratch, ThrowawayCluster() as cluster:
        folder = Path(scratch)
        os.chmod(folder, 0o755)
        source = cluster.dsn  # the `postgres` database, where Supabase keeps its tables
        t0 = time.perf_counter()
        rows = generate(source, args.size_mb)
        with psycopg.connect(source) as conn:
            size = conn.execute("SELECT pg_size_pretty(pg_database_size(current_database()))").fetchone()[0]
        print(f"generated {size} ({rows}) in {time.perf_counter() - t0:.1f}s")
        dump = folder / "bench.dump"
        pg_dump = str(find_pg_bindir("pg_dump") / "pg_dump")
        print(f"pg_dump -Fc: {timed([pg_dump, '-Fc', '-f', str(dump), '-d', source]):.1f}s, "
              f"{dump.stat().st_size / 2**20:.0f} MiB")  # fmt: skip
        cluster_dump = folder / "db_cluster-22-01-2026@04-00-00.backup.gz"
        pg_dumpall = str(find_pg_bindir("pg_dumpall") / "pg_dumpall")
        started = time.perf_counter()
        with cluster_dump.open("wb") as out:
            dumping = subprocess.Popen([pg_dumpall, "-d", cluster.dsn], stdout=subprocess.PIPE)
            subprocess.run(["gzip", "-c"], stdin=dumping.stdout, stdout=out, check=True)
            assert dumping.wait() == 0
        print(f"pg_dumpall | gzip: {time.perf_counter() - started:.1f}s, {cluster_dump.stat().st_size / 2**20:.0f} MiB")

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

        psql_load = psql_cluster_load(cluster_dump)
        ours = rewind_up(cluster_dump, ["--table", "customers"], folder / "s")
        report_against_psql("cluster dump --table", ours, psql_load, startup, 0.3)
        ours = rewind_up(cluster_dump, [], folder / "s")
        report_against_psql("cluster dump whole", ours, psql_load, startup, 1.2)

        raw = raw_dump_restore(cluster, source, tables, args.jobs, folder)
        ours = rewind_up(None, ["--from", source, *_table_args(tables), "--jobs", str(args.jobs)], folder / "s")
        report("--from 2 tables", ours, raw, startup, baseline="raw pg_dump+pg_restore")
    return 0


def _table_args(tables: list[str]) -> list[str]:
    return [arg for table in tables for arg in ("--table", table)]


def psql_cluster_load(cluster_dump: Path) -> float:
    """`gunzip -c FILE | psql -f -` into a fresh, already running cluster: the plain way to load such a backup.

    It inflates with the same program Rewind uses (pigz when installed), so the two differ only in the loading."""
    psql = str(find_pg_bindir("psql") / "psql")
    with ThrowawayCluster(settings=rp.REPLICA_CLUSTER_SETTINGS) as fresh:  # as a replica's own cluster
        started = time.perf_counter()
        gunzip = subprocess.Popen([str(decompressor()), "-dc", str(cluster_dump)], stdout=subprocess.PIPE)
        subprocess.run([psql, "-X", "-q", "-f", "-", "-d", fresh.dsn], stdin=gunzip.stdout, check=True,
                       capture_output=True)  # fmt: skip
        assert gunzip.wait() == 0
        return time.perf_counter() - started


def raw_dump_restore(cluster: ThrowawayCluster, source: str, tables: list[str], jobs: int, folder: Path) -> float:
    """`pg_dump -Fd -j N -t ...` of the source, then `pg_restore -j N` into a fresh database of the cluster."""
    pg_dump = str(find_pg_bindir("pg_dump") / "pg_dump")
    target = folder / "raw-from.dir"
    started = time.perf_counter()
    subprocess.run([pg_dump, "-Fd", "-j", str(jobs), *[f"-t{t}" for t in tables], "-f", str(target), "-d", source],
                   check=True, capture_output=True)  # fmt: skip
    dumped = time.perf_counter() - started
    seconds = dumped + raw_restore(cluster, target, ["-j", str(jobs)])
    subprocess.run(["rm", "-rf", str(target)], check=True)
    return seconds


def report_against_psql(label: str, ours: float, psql_load: float, startup: float, factor: float) -> None:
    verdict = "MET" if ours <= factor * psql_load else "MISSED"
    print(
        f"{label:20s} rewind {ours:7.2f}s  psql -f {psql_load:7.2f}s  ratio {ours / psql_load:5.2f}x  "
        f"(without start-up {(ours - startup) / psql_load:5.2f}x)  target <= {factor} x psql  {verdict}"
    )


def report(label: str, ours: float, raw: float, startup: float, baseline: str = "raw pg_restore") -> None:
    allowed = 1.2 * raw + 1.0
    verdict = "MET" if ours <= allowed else "MISSED"
    print(
        f"{label:20s} rewind {ours:7.2f}s  {baseline} {raw:7.2f}s  ratio {ours / raw:5.2f}x  "
        f"(without start-up {(ours - startup) / raw:5.2f}x)  target <= 1.2 x raw + 1 s = {allowed:.2f}s  {verdict}"
    )


if __name__ == "__main__":
    sys.exit(main())
