"""Benchmark: `rewind diff` against reladiff and against the floor (one hashing scan of each side), same run.

Two databases on one server: a backup of N rows, and a live copy with 100 rows deleted and 100 updated. Prints the
time of each, the ratios against the targets (Rewind/reladiff <= 0.25, Rewind/floor <= 1.5) and the diff's peak
memory, measured in a subprocess of its own so nothing else counts towards it.

    .venv/bin/python bench/diff.py [--rows 1000000]

Uses REWIND_BENCH_DATABASE_URL (a superuser DSN) if set, else starts a throwaway cluster. Installs reladiff into
the running interpreter's environment with pip if it is missing.
"""

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from restore.cluster import ThrowawayCluster  # noqa: E402

TABLE = "bench_items"
COLUMNS = ("id", "name", "amount", "qty", "created_at", "note")
CHANGED = 100
TARGET_VS_RELADIFF = 0.25
TARGET_VS_FLOOR = 1.5
REPEATS = 3

SEED = f"""
CREATE TABLE {TABLE} (id bigint PRIMARY KEY, name text NOT NULL, amount numeric(12, 2), qty int,
                      created_at timestamptz NOT NULL, note text);
INSERT INTO {TABLE}
SELECT i, 'item-' || i, (i % 100000) / 100.0, i % 1000,
       timestamptz '2025-01-01 00:00+00' + i * interval '1 second', CASE WHEN i % 3 = 0 THEN NULL ELSE md5(i::text) END
FROM generate_series(1, %(rows)s) AS i;
"""

RUN_REWIND = """
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
from restore.diff import diff_table
start = time.perf_counter()
result = diff_table(sys.argv[2], sys.argv[3], sys.argv[4])
elapsed = time.perf_counter() - start
print(json.dumps({"seconds": elapsed, "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "counts": result.counts}))
"""

RUN_RELADIFF = """
import json, sys, time
from reladiff import connect_to_table, diff_tables
a = connect_to_table(sys.argv[1], sys.argv[3], "id", thread_count=4)
b = connect_to_table(sys.argv[2], sys.argv[3], "id", thread_count=4)
start = time.perf_counter()
diffs = list(diff_tables(a, b, extra_columns=tuple(sys.argv[4].split(",")), threaded=True, max_threadpool_size=4))
elapsed = time.perf_counter() - start
print(json.dumps({"seconds": elapsed, "differences": len(diffs)}))
"""


@contextmanager
def server() -> Iterator[str]:
    url = os.environ.get("REWIND_BENCH_DATABASE_URL")
    if url:
        yield url
        return
    with ThrowawayCluster() as cluster:
        yield cluster.dsn


def dsn_for(admin_dsn: str, dbname: str) -> str:
    return make_conninfo(**{**conninfo_to_dict(admin_dsn), "dbname": dbname})


def url_for(dsn: str) -> str:
    """A URL (for reladiff) from any DSN."""
    p = conninfo_to_dict(dsn)
    auth = p.get("user", "postgres") + (f":{p['password']}" if p.get("password") else "")
    return f"postgresql://{auth}@{p.get('host', '127.0.0.1')}:{p.get('port', 5432)}/{p['dbname']}"


@contextmanager
def databases(admin_dsn: str, rows: int) -> Iterator[tuple[str, str]]:
    names = (f"rw_bench_backup_{os.getpid()}", f"rw_bench_live_{os.getpid()}")
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        for name in names:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(names[0])))
        backup, live = dsn_for(admin_dsn, names[0]), dsn_for(admin_dsn, names[1])
        with psycopg.connect(backup, autocommit=True) as conn:
            conn.execute(SEED.replace("%(rows)s", str(int(rows))))
        admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(*map(sql.Identifier, (names[1], names[0]))))
        try:
            damage(live, rows)
            for dsn in (backup, live):
                with psycopg.connect(dsn, autocommit=True) as conn:
                    conn.execute(f"VACUUM ANALYZE {TABLE}")
            yield backup, live
        finally:
            for name in names:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def damage(live: str, rows: int) -> None:
    """Deletes CHANGED rows and updates CHANGED others, spread over the whole key range."""
    step = max(rows // (2 * CHANGED), 1)
    ids = [1 + i * step for i in range(2 * CHANGED)]
    with psycopg.connect(live, autocommit=True) as conn:
        conn.execute(f"DELETE FROM {TABLE} WHERE id = ANY(%s)", (ids[0::2],))
        conn.execute(f"UPDATE {TABLE} SET qty = qty + 1, note = 'changed' WHERE id = ANY(%s)", (ids[1::2],))


def floor_seconds(backup: str, live: str) -> float:
    """One full hashing scan of each side, both at once: the least any server-side diff must do."""
    query = f"SELECT sum(hashtext(t::text)) FROM {TABLE} AS t"

    def scan(dsn: str) -> None:
        with psycopg.connect(dsn) as conn:
            conn.execute(query).fetchone()

    threads = [threading.Thread(target=scan, args=(dsn,)) for dsn in (backup, live)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - start


def run_json(code: str, *args: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"benchmark step failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def ensure_reladiff() -> None:
    if importlib.util.find_spec("reladiff") is None:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "reladiff[postgresql]"], check=True)


def best(runs: list[dict]) -> dict:
    return min(runs, key=lambda r: r["seconds"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=REPEATS, help="runs of each; the best is kept")
    args = parser.parse_args()
    ensure_reladiff()
    with server() as admin, databases(admin, args.rows) as (backup, live):
        floor_seconds(backup, live)  # warm the caches for everyone
        # Floor and Rewind alternate, so a burst of load from elsewhere on the machine falls on both alike.
        floors, rewinds = [], []
        for _ in range(args.repeats):
            floors.append(floor_seconds(backup, live))
            rewinds.append(run_json(RUN_REWIND, str(ROOT), backup, live, TABLE))
        floor, rewind = min(floors), best(rewinds)
        extra = ",".join(COLUMNS[1:])
        reladiff = best([run_json(RUN_RELADIFF, url_for(backup), url_for(live), TABLE, extra) for _ in range(1)])
    report(args.rows, floor, rewind, reladiff)
    paired = sorted(r["seconds"] / f for r, f in zip(rewinds, floors, strict=True))
    print(f"rewind / floor per alternating pair: {', '.join(f'{x:.3f}' for x in paired)}")
    return 0


def report(rows: int, floor: float, rewind: dict, reladiff: dict) -> None:
    vs_reladiff = rewind["seconds"] / reladiff["seconds"]
    vs_floor = rewind["seconds"] / floor
    c = rewind["counts"]
    print(f"rows: {rows:,} per side; live has {CHANGED} deleted and {CHANGED} updated rows")
    print(
        f"rewind diff: {rewind['seconds']:.3f} s  ({c['deleted']} deleted, {c['changed']} changed, {c['added']} "
        f"added; {c['buckets_differing']}/{c['buckets']} buckets differed; "
        f"rows fetched {c['rows_fetched_backup']} + {c['rows_fetched_live']})"
    )
    print(f"reladiff -j4: {reladiff['seconds']:.3f} s  ({reladiff['differences']} difference lines)")
    print(f"floor (parallel sum(hashtext(row::text)) of each side): {floor:.3f} s")
    print(f"peak memory of the diff process: {rewind['maxrss_kb'] / 1024:.1f} MiB (ru_maxrss)")
    met = _met(vs_reladiff, TARGET_VS_RELADIFF)
    print(f"rewind / reladiff = {vs_reladiff:.3f}  (target <= {TARGET_VS_RELADIFF}): {met}")
    print(f"rewind / floor    = {vs_floor:.3f}  (target <= {TARGET_VS_FLOOR}): {_met(vs_floor, TARGET_VS_FLOOR)}")


def _met(value: float, target: float) -> str:
    return "met" if value <= target else "NOT met"


if __name__ == "__main__":
    sys.exit(main())
