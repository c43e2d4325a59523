"""Replicas from a pg_dump: restore a dump (all of it, or only some tables) into a scratch database.

The scratch database lives on a server the caller names, or in a private throwaway cluster that keeps running
after the command so that later commands can query it. Each replica is recorded as a JSON file in the state
directory (`$REWIND_STATE_DIR/replicas`, default `~/.local/share/rewind/replicas`), and the dump's own timestamp
is stored on the database with `restore.meta.record_backup_time`.
"""

import contextlib
import enum
import gzip
import io
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import IO

import psycopg
from pglast import ast, parse_sql
from pglast.parser import ParseError
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from pydantic import BaseModel

from restore.cluster import ThrowawayCluster, find_pg_bindir
from restore.errors import ClusterError, DumpError, RewindError
from restore.guard import walk_nodes
from restore.meta import record_backup_time
from restore.targets import mask_dsn

Progress = Callable[[str], None]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,47}$")
_ARCHIVE_TIME = re.compile(r"^; Archive created at (?P<when>.+)$", re.M)
_PLAIN_TIME = re.compile(r"^-- (?:Started on|Dump completed on|Completed on) (?P<when>.+)$")
_TOC_LINE = re.compile(r"^(?P<id>\d+); \d+ \d+ (?P<rest>.*)$")
_VERBOSE_ENTRY = re.compile(r"^-- TOC entry (?P<id>\d+) ")
_ENTRY_HEADER = re.compile(
    r"^-- (?P<data>Data for )?Name: (?P<tag>.*); Type: (?P<desc>[A-Z ]+); Schema: (?P<ns>[^;]*); Owner: .*$"
)
_OWNER_LINE = re.compile(r"^ALTER [A-Z ]+ OWNER TO ")
_GLOBAL_SETTING = re.compile(r"^SET default_(tablespace|table_access_method|with_oids) ")

# pg_dump writes local wall-clock time with the zone's abbreviation (or a numeric offset when there is none).
_ZONE_OFFSETS_H = {
    "UTC": 0, "GMT": 0, "Z": 0, "WET": 0, "WEST": 1, "BST": 1, "CET": 1, "CEST": 2, "EET": 2, "EEST": 3,
    "MSK": 3, "IST": 5.5, "HKT": 8, "AWST": 8, "JST": 9, "KST": 9, "ACST": 9.5, "AEST": 10, "AEDT": 11,
    "NZST": 12, "NZDT": 13, "AST": -4, "ADT": -3, "EST": -5, "EDT": -4, "CST": -6, "CDT": -5, "MST": -7,
    "MDT": -6, "PST": -8, "PDT": -7, "AKST": -9, "AKDT": -8, "HST": -10,
}  # fmt: skip

# Objects a table may need that carry no data and never reference other tables' rows.
_SUPPORT_KINDS = {
    "SCHEMA", "EXTENSION", "TYPE", "SHELL TYPE", "DOMAIN", "FUNCTION", "PROCEDURE", "AGGREGATE", "COLLATION",
    "CAST", "CONVERSION", "OPERATOR", "OPERATOR CLASS", "OPERATOR FAMILY", "TEXT SEARCH CONFIGURATION",
    "TEXT SEARCH DICTIONARY", "TEXT SEARCH PARSER", "TEXT SEARCH TEMPLATE",
}  # fmt: skip
# Objects attached to tables: kept when every table they mention is restored.
_ATTACHED_KINDS = {"DEFAULT", "CONSTRAINT", "CHECK CONSTRAINT", "FK CONSTRAINT", "INDEX"}
_DATA_KINDS = {"TABLE DATA", "SEQUENCE SET"}
# pg_restore -l kinds of more than one word; any other kind is one word.
_MULTIWORD_KINDS = sorted(
    {
        "TABLE DATA", "SEQUENCE OWNED BY", "SEQUENCE SET", "FK CONSTRAINT", "CHECK CONSTRAINT", "DEFAULT ACL",
        "MATERIALIZED VIEW DATA", "MATERIALIZED VIEW", "SHELL TYPE", "OPERATOR CLASS", "OPERATOR FAMILY",
        "TEXT SEARCH CONFIGURATION", "TEXT SEARCH DICTIONARY", "TEXT SEARCH PARSER", "TEXT SEARCH TEMPLATE",
        "FOREIGN TABLE", "FOREIGN DATA WRAPPER", "FOREIGN SERVER", "USER MAPPING", "EVENT TRIGGER",
        "INDEX ATTACH", "TABLE ATTACH", "LARGE OBJECT", "PUBLICATION TABLE", "PUBLICATION TABLES IN SCHEMA",
        "ROW SECURITY", "SECURITY LABEL", "PROCEDURAL LANGUAGE", "ACCESS METHOD", "DATABASE PROPERTIES",
    },
    key=len,
    reverse=True,
)  # fmt: skip


class DumpFormat(enum.StrEnum):
    CUSTOM = "custom"
    DIRECTORY = "directory"
    TAR = "tar"
    PLAIN = "plain"
    PLAIN_GZIP = "plain-gzip"

    @property
    def is_archive(self) -> bool:
        return self in (DumpFormat.CUSTOM, DumpFormat.DIRECTORY, DumpFormat.TAR)

    @property
    def parallel(self) -> bool:
        return self in (DumpFormat.CUSTOM, DumpFormat.DIRECTORY)


class Replica(BaseModel):
    """A provisioned replica. `dsn` is the real one, for programs; mask it before showing it."""

    name: str
    dsn: str
    backup_time: datetime | None
    tables: list[str]
    seconds: float


class ReplicaRecord(Replica):
    """What the state directory keeps about a replica, so `ls` and `down` work from another process."""

    database: str
    server_dsn: str | None = None
    cluster_dir: str | None = None
    cluster_port: int | None = None
    dump: str
    created_at: datetime

    def public(self) -> Replica:
        return Replica.model_validate(self.model_dump(include=set(Replica.model_fields)))


@dataclass
class TocEntry:
    """One item of a dump: its kind (pg_dump's `desc`), schema, tag and, for schema items, its SQL."""

    kind: str
    namespace: str
    tag: str
    dump_id: int | None = None
    list_line: str = ""
    sql_text: str = ""

    @property
    def qualified(self) -> str:
        return f"{self.namespace}.{self.tag}"


@dataclass
class _Selection:
    """Which tables (qualified names) to restore and which sequences they need."""

    tables: set[str]
    sequences: set[str] = field(default_factory=set)
    dump_tables: set[str] = field(default_factory=set)


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
) -> Replica:
    """Restore `dump` (all of it, or only `tables`) into a new scratch database and register it as a replica.

    `backup_time` overrides the time read from the dump: archives record the dump machine's local time without
    its zone, so when that machine's zone differs from this one's, the operator gives the exact time."""
    if backup_time is not None and backup_time.tzinfo is None:
        raise DumpError("Give the backup time with its zone, e.g. 2026-01-22T04:00:12+00:00.")
    started = time.perf_counter()
    say = progress or (lambda message: None)
    dump = Path(dump)
    fmt = detect_format(dump)
    name = _new_name(dump, name)
    database = "rewind_" + name.replace("-", "_").lower()
    say(f"{dump.name}: {fmt.value} dump")
    cluster = _start_cluster(say) if server_dsn is None else None
    admin_dsn = cluster.dsn if cluster else str(server_dsn)
    try:
        dsn = _create_database(admin_dsn, database)
        try:
            dumped_at, restored = _restore(dump, fmt, dsn, tables, jobs or _default_jobs(), say)
            backup_time = backup_time.astimezone(UTC) if backup_time else dumped_at
            _record_time(dsn, backup_time)
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
        backup_time=backup_time,
        tables=restored,
        seconds=round(time.perf_counter() - started, 3),
        database=database,
        server_dsn=None if cluster else server_dsn,
        cluster_dir=str(cluster.root) if cluster else None,
        cluster_port=cluster.port if cluster else None,
        dump=str(dump.resolve()),
        created_at=datetime.now(UTC),
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
        cluster = ThrowawayCluster(root=Path(record.cluster_dir), port=record.cluster_port)
        if not cluster.running():
            cluster.start()


def state_dir() -> Path:
    base = os.environ.get("REWIND_STATE_DIR")
    root = Path(base) if base else Path.home() / ".local" / "share" / "rewind"
    return root / "replicas"


# ---------------------------------------------------------------------------------------------------------------
# Dump format and time


def detect_format(dump: Path) -> DumpFormat:
    """The dump's format, from its content rather than its name."""
    if dump.is_dir():
        if (dump / "toc.dat").exists():
            return DumpFormat.DIRECTORY
        raise DumpError(f"{dump} is a directory without toc.dat; pass a pg_dump -Fd directory or a dump file.")
    if not dump.is_file():
        raise DumpError(f"No dump at {dump}; pass the path of a pg_dump file or directory.")
    with dump.open("rb") as handle:
        head = handle.read(512)
    if head.startswith(b"PGDMP"):
        return DumpFormat.CUSTOM
    if len(head) >= 262 and head[257:262] == b"ustar":
        return DumpFormat.TAR
    if head.startswith(b"\x1f\x8b"):
        with gzip.open(dump, "rb") as handle:
            if handle.read(5) == b"PGDMP":
                raise DumpError(f"{dump} is a gzipped custom-format dump; gunzip it first.")
        return DumpFormat.PLAIN_GZIP
    if b"\0" in head:
        raise DumpError(f"{dump} is not a pg_dump output (custom, directory, tar, or plain SQL, maybe gzipped).")
    return DumpFormat.PLAIN


def parse_dump_time(text: str) -> datetime | None:
    """`2026-01-22 04:00:12 UTC` (pg_dump's format: local time and zone abbreviation or offset) as aware UTC."""
    match = re.fullmatch(r"\s*(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})\s*(\S*)\s*", text)
    if not match:
        return None
    local = datetime.strptime(match[1], "%Y-%m-%d %H:%M:%S")
    offset = _zone_offset(match[2] or "UTC")
    if offset is None:
        return None
    return local.replace(tzinfo=timezone(offset)).astimezone(UTC)


def _zone_offset(zone: str) -> timedelta | None:
    if zone.upper() in _ZONE_OFFSETS_H:
        return timedelta(hours=_ZONE_OFFSETS_H[zone.upper()])
    numeric = re.fullmatch(r"([+-])(\d{2}):?(\d{2})?", zone)
    if not numeric:
        return None
    sign = -1 if numeric[1] == "-" else 1
    return sign * timedelta(hours=int(numeric[2]), minutes=int(numeric[3] or 0))


# ---------------------------------------------------------------------------------------------------------------
# Where the replica lives


def _new_name(dump: Path, name: str | None) -> str:
    if name is None:
        stem = re.sub(r"[^A-Za-z0-9_-]+", "-", dump.name.split(".")[0]).strip("-")[:30] or "dump"
        name = f"{stem}-{secrets.token_hex(3)}"
    if not _NAME.match(name):
        raise RewindError(f"Replica name {name!r} must be 1-48 letters, digits, '-' or '_', starting alphanumeric.")
    if _record_path(name).exists():
        raise RewindError(f"A replica named {name!r} exists; pick another --name or `rewind replica down {name}`.")
    return name


def _default_jobs() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


def _start_cluster(say: Progress) -> ThrowawayCluster:
    started = time.perf_counter()
    cluster = ThrowawayCluster()
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


# ---------------------------------------------------------------------------------------------------------------
# Restoring


def _restore(
    dump: Path, fmt: DumpFormat, dsn: str, tables: Sequence[str], jobs: int, say: Progress
) -> tuple[datetime | None, list[str]]:
    if fmt.is_archive:
        backup_time, selected = _restore_archive(dump, fmt, dsn, tables, jobs, say)
    else:
        backup_time, selected = _restore_plain(dump, fmt, dsn, tables, say)
    return backup_time, selected or _tables_in(dsn)


def _tables_in(dsn: str) -> list[str]:
    query = """
        SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
        ORDER BY 1
    """
    with psycopg.connect(dsn) as conn:
        return [row[0] for row in conn.execute(query)]


def _restore_archive(
    dump: Path, fmt: DumpFormat, dsn: str, tables: Sequence[str], jobs: int, say: Progress
) -> tuple[datetime | None, list[str]]:
    listing = _run_pg("pg_restore", "-l", str(dump)).stdout
    match = _ARCHIVE_TIME.search(listing)
    backup_time = parse_dump_time(match["when"]) if match else None
    entries = _parse_listing(listing)
    args = ["--no-owner", "--no-privileges", "--no-tablespaces", "--exit-on-error"]
    if fmt.parallel and jobs > 1:
        args += ["-j", str(jobs)]
    selected: list[str] = []
    with tempfile.TemporaryDirectory(prefix="rewind-list-") as scratch:
        if tables:
            _attach_sql(entries, _run_pg("pg_restore", "-v", "-s", "-f", "-", str(dump)).stdout)
            selection = _select_tables(entries, tables)
            selected = sorted(selection.tables)
            list_file = Path(scratch) / "restore.list"
            kept = _keep(entries, selection)
            list_file.write_text("".join(entry.list_line + "\n" for entry in kept))
            args += ["-L", str(list_file)]
            say(f"restoring {len(selected)} table(s), {len(kept)} of {len(entries)} dump items")
        else:
            say(f"restoring all {len(entries)} dump items")
        _run_pg("pg_restore", *args, str(dump), dsn=dsn)
    return backup_time, selected


def _parse_listing(listing: str) -> list[TocEntry]:
    entries = []
    for line in listing.splitlines():
        match = _TOC_LINE.match(line)
        if match:
            kind, namespace, tag = _split_toc_rest(match["rest"])
            entries.append(TocEntry(kind, namespace, tag, dump_id=int(match["id"]), list_line=line))
    return entries


def _split_toc_rest(rest: str) -> tuple[str, str, str]:
    """`TABLE DATA public orders postgres` -> (TABLE DATA, public, orders): kind, schema, tag (may hold spaces)."""
    kind = next((k for k in _MULTIWORD_KINDS if rest.startswith(k + " ")), rest.split(" ", 1)[0])
    words = rest[len(kind) + 1 :].split(" ")
    return kind, words[0], " ".join(words[1:-1])


def _attach_sql(entries: list[TocEntry], schema_script: str) -> None:
    """Give each schema entry its SQL, from `pg_restore -v -s` output where `-- TOC entry N` starts each item."""
    sql_by_id: dict[int, list[str]] = {}
    current: list[str] = []
    for line in schema_script.splitlines(keepends=True):
        match = _VERBOSE_ENTRY.match(line)
        if match:
            current = sql_by_id.setdefault(int(match["id"]), [])
        elif not line.startswith(("--", "\\")):  # comments and psql meta-commands (\restrict) are not SQL
            current.append(line)
    for entry in entries:
        entry.sql_text = "".join(sql_by_id.get(entry.dump_id or -1, ()))


def _run_pg(
    program: str, *args: str, dsn: str | None = None, stdin: IO[bytes] | None = None
) -> "subprocess.CompletedProcess[str]":
    command = [str(find_pg_bindir(program) / program), *args]
    env = {**os.environ, "PGCONNECT_TIMEOUT": "10"}
    if dsn is not None:
        command += ["-d", _dsn_without_password(dsn, env)]
    proc = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise DumpError(f"{program} failed: {mask_dsn(proc.stderr.strip())[-2000:]}")
    return proc


def _dsn_without_password(dsn: str, env: dict[str, str]) -> str:
    """The DSN for a child's argv; the password travels in its environment, where `ps` does not show it."""
    params = conninfo_to_dict(dsn)
    password = params.pop("password", None)
    if password:
        env["PGPASSWORD"] = str(password)
    return make_conninfo(**params)


# ---------------------------------------------------------------------------------------------------------------
# Choosing what to restore for --table


def _select_tables(entries: list[TocEntry], wanted: Sequence[str]) -> _Selection:
    available = {entry.qualified for entry in entries if entry.kind == "TABLE"}
    selection = _Selection(tables={_resolve_table(name, available) for name in wanted}, dump_tables=available)
    for entry in entries:
        if entry.kind in ("DEFAULT", "SEQUENCE", "SEQUENCE OWNED BY") and _attached_to_selection(entry, selection):
            selection.sequences |= _sequences_named(entry)
    return selection


def _resolve_table(name: str, available: set[str]) -> str:
    if "." in name:
        if name in available:
            return name
    else:
        matches = sorted(t for t in available if t.split(".", 1)[1] == name)
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise DumpError(f"Table {name!r} is ambiguous in the dump ({', '.join(matches)}); qualify it.")
    shown = ", ".join(sorted(available)[:20]) + (" ..." if len(available) > 20 else "")
    raise DumpError(f"The dump has no table {name!r}. Tables in the dump: {shown or 'none'}.")


def _keep(entries: Iterable[TocEntry], selection: _Selection) -> list[TocEntry]:
    return [entry for entry in entries if _wanted(entry, selection)]


def _wanted(entry: TocEntry, selection: _Selection) -> bool:
    if entry.kind in ("TABLE", "TABLE DATA"):
        return entry.qualified in selection.tables
    if entry.kind in ("SEQUENCE", "SEQUENCE SET"):
        return entry.qualified in selection.sequences
    if entry.kind in _SUPPORT_KINDS:
        # Types, functions and the like stay unless they name a table left out (a function returning SETOF it).
        return not (_relations_named(entry) & selection.dump_tables) - selection.tables
    if entry.kind in _ATTACHED_KINDS or entry.kind == "SEQUENCE OWNED BY":
        return _attached_to_selection(entry, selection)
    return False  # views, triggers, policies, comments, ACLs, ...: not part of a table-level replica


def _attached_to_selection(entry: TocEntry, selection: _Selection) -> bool:
    """True when the tables the entry names are all selected (an FK needs both ends), and there is one."""
    tables = _relations_named(entry) & selection.dump_tables
    return bool(tables) and tables <= selection.tables


def _sequences_named(entry: TocEntry) -> set[str]:
    """Sequences an entry creates or uses: the subject of SEQUENCE / OWNED BY, or nextval('s') in a DEFAULT."""
    found = {entry.qualified} if entry.kind in ("SEQUENCE", "SEQUENCE OWNED BY") else set()
    for node in _nodes(entry):
        if isinstance(node, ast.FuncCall) and _last_name(node.funcname) == "nextval":
            constants = (c for c in walk_nodes(node.args) if isinstance(c, ast.A_Const))
            found |= {_qualify(c.val.sval) for c in constants if isinstance(c.val, ast.String)}
    return found


def _relations_named(entry: TocEntry) -> set[str]:
    """Qualified names an entry's SQL mentions as relations, OWNED BY targets or schema-qualified types."""
    names: set[str] = set()
    for node in _nodes(entry):
        if isinstance(node, ast.RangeVar):
            names.add(f"{node.schemaname or entry.namespace}.{node.relname}")
        elif isinstance(node, ast.DefElem) and node.defname == "owned_by" and len(node.arg) >= 3:
            names.add(".".join(part.sval for part in node.arg[-3:-1]))
        elif isinstance(node, ast.TypeName) and node.names and len(node.names) == 2:
            names.add(".".join(part.sval for part in node.names))
    return names


def _last_name(parts: Sequence[ast.Node]) -> str:
    last = parts[-1] if parts else None
    return last.sval if isinstance(last, ast.String) else ""


def _qualify(name: str) -> str:
    return name if "." in name else f"public.{name}"


def _nodes(entry: TocEntry) -> list[ast.Node]:
    if not entry.sql_text.strip():
        return []
    try:
        statements = parse_sql(entry.sql_text)
    except ParseError:
        return []
    return list(walk_nodes(statements))


# ---------------------------------------------------------------------------------------------------------------
# Plain SQL dumps


def _restore_plain(
    dump: Path, fmt: DumpFormat, dsn: str, tables: Sequence[str], say: Progress
) -> tuple[datetime | None, list[str]]:
    """Stream the dump once into psql, keeping only the wanted tables' items when tables are named."""
    env = dict(os.environ)
    psql = str(find_pg_bindir("psql") / "psql")
    command = [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "--no-password", "-d", _dsn_without_password(dsn, env)]
    say("restoring " + (f"{len(tables)} table(s)" if tables else "everything") + " from a plain SQL dump")
    plain = _PlainFilter(tables)
    with _open_text(dump, fmt) as source:
        proc = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env
        )
        assert proc.stdin is not None and proc.stderr is not None
        sink = io.TextIOWrapper(proc.stdin, encoding="utf-8", errors="surrogateescape", write_through=False)
        with contextlib.suppress(BrokenPipeError):  # psql stopped on an error; its message follows
            plain.run(source, sink)
            sink.close()
        stderr = proc.stderr.read().decode("utf-8", "replace")
        proc.wait()
    if proc.returncode != 0:
        raise DumpError(f"psql failed restoring {dump.name}: {mask_dsn(stderr.strip())[-2000:]}")
    return plain.backup_time, sorted(plain.selection.tables) if tables else []


def _open_text(dump: Path, fmt: DumpFormat) -> IO[str]:
    if fmt is DumpFormat.PLAIN_GZIP:
        return gzip.open(dump, "rt", encoding="utf-8", errors="surrogateescape", newline="")
    return dump.open("r", encoding="utf-8", errors="surrogateescape", newline="", buffering=1 << 20)


class _PlainFilter:
    """Reads a plain dump item by item (pg_dump's `-- Name: ...; Type: ...` headers) and writes what to restore.

    With tables named, schema items are held until the first data item (plain dumps put all pre-data first),
    decided with the same rules as archives; data of the wanted tables then streams straight through, and
    post-data items are decided at the end.
    """

    def __init__(self, tables: Sequence[str]) -> None:
        self.wanted = list(tables)
        self.selection = _Selection(tables=set())
        self.backup_time: datetime | None = None
        self._times: dict[str, datetime | None] = {}

    def run(self, source: IO[str], sink: IO[str]) -> None:
        pending: list[TocEntry] = []
        reader = _ItemReader(source, self._note_time)
        for entry, lines in reader.items():
            if entry is None:  # the preamble: SET commands every item needs
                sink.writelines(lines)
            elif not self.wanted:
                if entry.kind not in ("ACL", "DEFAULT ACL"):
                    sink.writelines(line for line in lines if not _OWNER_LINE.match(line))
            elif entry.kind in _DATA_KINDS:
                if pending or not self.selection.tables:
                    self._decide(pending, sink)
                    pending = []
                if _wanted(entry, self.selection):
                    sink.writelines(lines)
            else:
                entry.sql_text = "".join(line for line in lines if _is_schema_sql(line))
                pending.append(entry)
        if self.wanted:
            self._decide(pending, sink)
        self.backup_time = self._times.get("Started") or self._times.get("Completed")

    def _decide(self, pending: list[TocEntry], sink: IO[str]) -> None:
        if not self.selection.tables:
            self.selection = _select_tables(pending, self.wanted)
        for entry in _keep(pending, self.selection):
            sink.write(entry.sql_text)

    def _note_time(self, line: str) -> None:
        match = _PLAIN_TIME.match(line)
        if match:
            self._times["Started" if "Started" in line else "Completed"] = parse_dump_time(match["when"])


def _is_schema_sql(line: str) -> bool:
    # Ownership needs the dump's roles, and a trailing `\\unrestrict` is a psql meta-command, not SQL.
    return not (_OWNER_LINE.match(line) or line.startswith("\\"))


class _ItemReader:
    """Splits a plain dump at item headers; inside COPY data it looks for nothing but the closing `\\.`."""

    def __init__(self, source: IO[str], on_comment: Callable[[str], None]) -> None:
        self._source = source
        self._on_comment = on_comment
        self._next: TocEntry | None = None

    def items(self) -> Iterator[tuple[TocEntry | None, Iterator[str]]]:
        entry: TocEntry | None = None  # the preamble comes first
        while True:
            lines = self._lines(copy_data=entry is not None and entry.kind in _DATA_KINDS)
            yield entry, lines
            for _ in lines:  # drain what the caller skipped
                pass
            if self._next is None:
                return
            entry, self._next = self._next, None

    def _lines(self, copy_data: bool) -> Iterator[str]:
        source = self._source
        for line in source:
            if line.startswith("-- "):
                header = _ENTRY_HEADER.match(line.rstrip("\r\n"))
                if header:
                    self._next = TocEntry(header["desc"].strip(), header["ns"], header["tag"])
                    return
                self._on_comment(line)
            elif line.startswith("SET default_tablespace "):
                continue  # scratch servers lack the dump's tablespaces
            yield line
            if copy_data and line.startswith("COPY ") and line.rstrip().endswith("FROM stdin;"):
                for data in source:
                    yield data
                    if data.startswith("\\.") and data.rstrip("\r\n") == "\\.":
                        break
