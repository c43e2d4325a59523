"""Replicas: scratch databases restored from a dump (see restore.dump), their records, and their removal.

The scratch database lives on a server the caller names, or in a private throwaway cluster that keeps running
after the command so that later commands can query it. Each replica is recorded as a JSON file in the state
directory (`$REWIND_STATE_DIR/replicas`, default `~/.local/share/rewind/replicas`), and the dump's own timestamp
is stored on the database with `restore.meta.record_backup_time`.
"""

import contextlib
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from pydantic import BaseModel, Field

from restore.cluster import ThrowawayCluster
from restore.clusterdump import SkippedItem, is_cluster_dump, restore_cluster_dump
from restore.dump import Progress, detect_format, restore_dump
from restore.errors import ClusterError, DumpError, RewindError
from restore.livecopy import copy_live
from restore.meta import record_backup_time
from restore.snapshot import Side, as_target
from restore.targets import TargetRole, mask_dsn

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,47}$")
# A replica's private cluster only ever loads and reads: no standby follows it, so it writes the least WAL there is.
# A table's data loaded in the transaction that truncated it is then not WAL-logged at all, nor is an index build.
REPLICA_CLUSTER_SETTINGS = {"wal_level": "minimal", "max_wal_senders": "0"}


class Replica(BaseModel):
    """A provisioned replica. `dsn` is the real one, for programs; mask it before showing it.

    `backup_time_source` says where the backup time came from: `dump-header` (the dump's own time), `file-name`
    (a Supabase backup's name), `given` (--backup-time) or `snapshot` (copied from a live database at that time)."""

    name: str
    dsn: str
    backup_time: datetime | None
    tables: list[str]
    seconds: float
    backup_time_source: str | None = None
    source_database: str | None = None
    roles_created: list[str] = Field(default_factory=list)
    skipped_extensions: list[str] = Field(default_factory=list)
    skipped: list[SkippedItem] = Field(default_factory=list)


class ReplicaRecord(Replica):
    """What the state directory keeps about a replica, so `ls` and `down` work from another process."""

    database: str
    server_dsn: str | None = None
    cluster_dir: str | None = None
    cluster_port: int | None = None
    dump: str  # the dump's path, or `live:<target>` for a copy of a live database
    created_at: datetime

    def public(self) -> Replica:
        return Replica.model_validate(self.model_dump(include=set(Replica.model_fields)))


class Loaded(BaseModel):
    """What a loader put into the scratch database: the facts a replica records."""

    backup_time: datetime | None
    backup_time_source: str | None
    tables: list[str]
    source_database: str | None = None
    roles_created: list[str] = Field(default_factory=list)
    skipped_extensions: list[str] = Field(default_factory=list)
    skipped: list[SkippedItem] = Field(default_factory=list)


Loader = Callable[[str, Progress], Loaded]


# ---------------------------------------------------------------------------------------------------------------
# Public API


def provision(
    dump: Path,
    *,
    server_dsn: str | None = None,
    tables: Sequence[str] = (),
    name: str | None = None,
    jobs: int | None = None,
    progress: Progress | None = None,
    backup_time: datetime | None = None,
    database: str | None = None,
) -> Replica:
    """Restore `dump` (all of it, or only `tables`) into a new scratch database and register it as a replica.

    A cluster dump (pg_dumpall, Supabase's db_cluster backups) restores one `database` (default: the one holding
    the tables), with the tables the named ones reference. `backup_time` overrides the time read from the dump:
    archives record the dump machine's local time without its zone, so when that machine's zone differs from this
    one's, the operator gives the exact time."""
    dump = Path(dump)
    fmt = detect_format(dump)
    cluster_dump = is_cluster_dump(dump, fmt)
    if database is not None and not cluster_dump:
        raise DumpError(f"{dump.name} holds one database; --database applies to cluster dumps (pg_dumpall output).")

    def load(dsn: str, say: Progress) -> Loaded:
        say(f"{dump.name}: {'cluster ' if cluster_dump else ''}{fmt.value} dump")
        if cluster_dump:
            done = restore_cluster_dump(dump, fmt, dsn, database=database, tables=tables, say=say)
            return Loaded(
                backup_time=done.backup_time,
                backup_time_source=done.backup_time_source,
                tables=done.tables,
                source_database=done.database,
                roles_created=done.roles_created,
                skipped_extensions=done.skipped_extensions,
                skipped=done.skipped,
            )
        dumped_at, restored = restore_dump(dump, fmt, dsn, tables, jobs or _default_jobs(), say)
        return Loaded(backup_time=dumped_at, backup_time_source="dump-header" if dumped_at else None, tables=restored)

    return provision_with(
        load,
        stem=dump.name,
        origin=str(dump.resolve()),
        server_dsn=server_dsn,
        name=name,
        progress=progress,
        backup_time=backup_time,
    )


def provision_from(
    source: Side,
    *,
    server_dsn: str | None = None,
    tables: Sequence[str] = (),
    name: str | None = None,
    jobs: int | None = None,
    progress: Progress | None = None,
) -> Replica:
    """A replica copied straight from a live database (a replica or production target, only read), all of it or
    `tables` and the tables they reference, from one snapshot whose time becomes the backup time."""
    target = as_target(source, TargetRole.REPLICA)

    def load(dsn: str, say: Progress) -> Loaded:
        copied = copy_live(target, dsn, tables=tables, jobs=jobs or _default_jobs(), progress=say)
        return Loaded(
            backup_time=copied.snapshot_time.astimezone(UTC),
            backup_time_source="snapshot",
            tables=copied.tables,
            source_database=_dbname(target.dsn),
        )

    return provision_with(
        load, stem=target.name, origin=f"live:{target.name}", server_dsn=server_dsn, name=name, progress=progress
    )


def provision_with(
    load: Loader,
    *,
    stem: str,
    origin: str,
    server_dsn: str | None = None,
    name: str | None = None,
    progress: Progress | None = None,
    backup_time: datetime | None = None,
) -> Replica:
    """Create a scratch database (on `server_dsn`, else in a private cluster), fill it with `load`, and record it.

    Whatever fails on the way drops the database (and stops the cluster): no half-made replica stays behind."""
    if backup_time is not None and backup_time.tzinfo is None:
        raise DumpError("Give the backup time with its zone, e.g. 2026-01-22T04:00:12+00:00.")
    started = time.perf_counter()
    say = progress or (lambda message: None)
    name = _new_name(stem, name)
    database = "rewind_" + name.replace("-", "_").lower()
    cluster = _start_cluster(say) if server_dsn is None else None
    admin_dsn = cluster.dsn if cluster else str(server_dsn)
    try:
        dsn = _create_database(admin_dsn, database)
        try:
            loaded = load(dsn, say)
            if backup_time is not None:
                loaded.backup_time, loaded.backup_time_source = backup_time.astimezone(UTC), "given"
            _record_time(dsn, loaded.backup_time)
        except BaseException:
            _drop_database(admin_dsn, database)
            raise
    except BaseException:
        if cluster:
            cluster.stop()
        raise
    record = ReplicaRecord(
        name=name,
        dsn=dsn,
        seconds=round(time.perf_counter() - started, 3),
        database=database,
        server_dsn=None if cluster else server_dsn,
        cluster_dir=str(cluster.root) if cluster else None,
        cluster_port=cluster.port if cluster else None,
        dump=origin,
        created_at=datetime.now(UTC),
        **loaded.model_dump(),
    )
    _save_record(record)
    say(f"replica {name} ready in {record.seconds:.1f}s at {mask_dsn(dsn)}")
    return record.public()


def list_replicas() -> list[Replica]:
    return [record.public() for record in _load_records()]


def destroy(name: str) -> None:
    """Drop the replica's scratch database, or stop and delete its private cluster, and forget it."""
    record = get_record(name)
    if record.cluster_dir:
        ThrowawayCluster(root=Path(record.cluster_dir), port=record.cluster_port).stop(remove=True)
    elif record.server_dsn:
        _drop_database(record.server_dsn, record.database)
    _record_path(record.name).unlink(missing_ok=True)


def get_record(name: str) -> ReplicaRecord:
    path = _record_path(name)
    if not path.exists():
        known = ", ".join(r.name for r in _load_records()) or "none"
        raise RewindError(f"No replica named {name!r} (known: {known}). See `rewind replica ls`.")
    return ReplicaRecord.model_validate_json(path.read_text())


def ensure_running(record: ReplicaRecord) -> None:
    """Restart a replica's private cluster if it stopped (after a reboot, say)."""
    if record.cluster_dir:
        cluster = ThrowawayCluster(
            root=Path(record.cluster_dir), port=record.cluster_port, settings=REPLICA_CLUSTER_SETTINGS
        )
        if not cluster.running():
            cluster.start()


def state_dir() -> Path:
    base = os.environ.get("REWIND_STATE_DIR")
    root = Path(base) if base else Path.home() / ".local" / "share" / "rewind"
    return root / "replicas"


# ---------------------------------------------------------------------------------------------------------------
# Where the replica lives


def _new_name(source: str, name: str | None) -> str:
    if name is None:
        stem = re.sub(r"[^A-Za-z0-9_-]+", "-", source.split(".")[0]).strip("-")[:30] or "dump"
        name = f"{stem}-{secrets.token_hex(3)}"
    if not _NAME.match(name):
        raise RewindError(f"Replica name {name!r} must be 1-48 letters, digits, '-' or '_', starting alphanumeric.")
    if _record_path(name).exists():
        raise RewindError(f"A replica named {name!r} exists; pick another --name or `rewind replica down {name}`.")
    return name


def _dbname(dsn: str) -> str | None:
    name = conninfo_to_dict(dsn).get("dbname")
    return str(name) if name else None


def _default_jobs() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


def _start_cluster(say: Progress) -> ThrowawayCluster:
    started = time.perf_counter()
    cluster = ThrowawayCluster(settings=REPLICA_CLUSTER_SETTINGS)
    _seed_from_template(cluster)
    cluster.start()
    say(f"private cluster on port {cluster.port} started in {time.perf_counter() - started:.2f}s")
    return cluster


def _seed_from_template(cluster: ThrowawayCluster) -> None:
    """Copy a cached initdb result into the new cluster: initdb takes seconds, a copy takes a fraction of one."""
    template = _template_dir(cluster)
    if not (template / "PG_VERSION").exists():
        _build_template(template)
    owner = template.stat()
    cluster.root.mkdir(parents=True, exist_ok=True)
    # cp -a keeps owners and modes in one pass (Python's copytree plus a chown walk is several times slower).
    subprocess.run(["cp", "-a", str(template), str(cluster.datadir)], check=True, capture_output=True)
    os.chown(cluster.root, owner.st_uid, owner.st_gid)
    os.chmod(cluster.root, 0o755)


TEMPLATE_LAYOUT = "wal1m"  # change when ThrowawayCluster.init's options change, so old templates are not reused


def _template_dir(cluster: ThrowawayCluster) -> Path:
    version = cluster.bindir.parent.name
    return Path(tempfile.gettempdir()) / f"rewind-initdb-template-{version}-{TEMPLATE_LAYOUT}-uid{os.geteuid()}"


def _build_template(template: Path) -> None:
    # initdb into a private directory, then rename into place: concurrent builders never see half a template.
    scratch = ThrowawayCluster()
    try:
        scratch.init()
        with contextlib.suppress(OSError):
            os.rename(scratch.datadir, template)
    finally:
        shutil.rmtree(scratch.root, ignore_errors=True)
    if not (template / "PG_VERSION").exists():
        raise ClusterError(f"Could not prepare the cluster template at {template}; remove it and retry.")


def _create_database(admin_dsn: str, database: str) -> str:
    try:
        with psycopg.connect(admin_dsn, autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(database)))
    except psycopg.errors.DuplicateDatabase:
        raise RewindError(f"Database {database} already exists on the server; pick another --name.") from None
    except psycopg.Error as exc:
        raise RewindError(f"Cannot create the scratch database: {mask_dsn(str(exc)).strip()}") from None
    params = conninfo_to_dict(admin_dsn)
    params["dbname"] = database
    return make_conninfo(**params)


def _drop_database(admin_dsn: str, database: str) -> None:
    try:
        with psycopg.connect(admin_dsn, autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
    except psycopg.Error as exc:
        raise RewindError(f"Cannot drop database {database}: {mask_dsn(str(exc)).strip()}") from None


def _record_time(dsn: str, backup_time: datetime | None) -> None:
    if backup_time is None:
        return
    with psycopg.connect(dsn, autocommit=True) as conn:
        record_backup_time(conn, backup_time)


def _record_path(name: str) -> Path:
    return state_dir() / f"{name}.json"


def _save_record(record: ReplicaRecord) -> None:
    directory = state_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = _record_path(record.name)
    # The record holds the DSN (maybe with a password): readable by its owner only.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(record.model_dump_json(indent=2))


def _load_records() -> list[ReplicaRecord]:
    directory = state_dir()
    if not directory.is_dir():
        return []
    records = []
    for path in sorted(directory.glob("*.json")):
        with contextlib.suppress(ValueError):
            records.append(ReplicaRecord.model_validate_json(path.read_text()))
    return sorted(records, key=lambda r: r.created_at)
