"""A replica straight from a live database (a read replica, or production read-only), with no dump file kept.

One snapshot is exported from the source (`pg_export_snapshot()` in a REPEATABLE READ READ ONLY transaction that
stays open meanwhile), and `pg_dump --snapshot -Fd -j N` dumps in parallel from exactly that snapshot, so every table
comes from the same instant; its time is the backup time. The directory goes to `pg_restore -j N` and is deleted.

With tables named, the tables their foreign keys reference (at any depth) come too. The dump then carries the schema
of everything (small) but the data of those tables only (`--exclude-table-data` for the rest), and the restore keeps
the items those tables need. Nothing is written to the source, and no lock is taken there beyond pg_dump's own
ACCESS SHARE locks.
"""

import shutil
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import psycopg
from psycopg import sql
from pydantic import BaseModel

from restore.catalog import Catalog, load_catalog
from restore.dump import DumpFormat, Progress, restore_dump
from restore.errors import DumpError, RewindError
from restore.pgtools import run_pg
from restore.snapshot import Side, as_target, read_only_snapshot
from restore.targets import TargetRole, mask_dsn


class LiveCopy(BaseModel):
    """What a copy from a live database holds: the snapshot's time and the tables copied."""

    source: str
    snapshot_time: datetime
    tables: list[str]
    dump_seconds: float
    restore_seconds: float


def copy_live(
    source: Side, dsn: str, *, tables: Sequence[str] = (), jobs: int = 2, progress: Progress | None = None
) -> LiveCopy:
    """Copy `source` (all of it, or `tables` and the tables they reference) into the empty database at `dsn`."""
    say = progress or (lambda message: None)
    target = as_target(source, TargetRole.REPLICA)
    with read_only_snapshot(target, TargetRole.REPLICA, error=DumpError) as (_, conn):
        catalog = load_catalog(conn)
    selected = closure(catalog, tables) if tables else []
    exclude = sorted(set(catalog.tables) - set(selected)) if tables else []
    try:
        holder = psycopg.connect(target.dsn, autocommit=False)
    except psycopg.OperationalError as exc:
        raise DumpError(f"Cannot connect to {target.name}: {mask_dsn(str(exc)).strip()}") from exc
    scratch = Path(tempfile.mkdtemp(prefix="rewind-live-"))
    try:
        with holder:
            holder.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            holder.read_only = True
            # The snapshot is taken as this first statement starts; clock_timestamp() is read within it.
            row = holder.execute("SELECT pg_export_snapshot(), clock_timestamp()").fetchone()
            assert row is not None
            snapshot_id, snapshot_time = row
            shown = f"{len(selected)} table(s)" if tables else "the whole database"
            say(f"copying {shown} from {target.name} as of {snapshot_time.isoformat()}")
            started = time.perf_counter()
            args = ["-Fd", "-j", str(max(1, jobs)), "--no-sync", f"--snapshot={snapshot_id}"]
            args += [f"--exclude-table-data={_pattern(name)}" for name in exclude]
            run_pg("pg_dump", *args, "-f", str(scratch / "dump"), dsn=target.dsn)
            dumped = time.perf_counter() - started
            holder.rollback()
        started = time.perf_counter()
        _, restored = restore_dump(scratch / "dump", DumpFormat.DIRECTORY, dsn, selected, jobs, say)
        return LiveCopy(
            source=target.name,
            snapshot_time=snapshot_time,
            tables=restored,
            dump_seconds=round(dumped, 3),
            restore_seconds=round(time.perf_counter() - started, 3),
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def closure(catalog: Catalog, tables: Sequence[str]) -> list[str]:
    """The named tables and every table their foreign keys reference, at any depth, as qualified names."""
    try:
        todo = [catalog.table(name).qualified for name in tables]
    except RewindError as exc:
        raise DumpError(str(exc)) from exc
    found: set[str] = set()
    while todo:
        name = todo.pop()
        if name in found:
            continue
        found.add(name)
        todo += [fk.ref_table for fk in catalog.tables[name].foreign_keys if fk.ref_table not in found]
    return sorted(found)


def _pattern(qualified: str) -> str:
    """A pg_dump pattern matching exactly one table: each part double-quoted (so `*`, `?` and case are literal)."""
    schema, name = qualified.split(".", 1)
    return sql.Identifier(schema, name).as_string(None)
