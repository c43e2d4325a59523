"""pg_dump output: its format (from content), its own time, choosing the items of some tables, and restoring it.

Archives (custom, directory, tar) go through pg_restore, in parallel where the format allows, with a TOC list of the
items the named tables need. Plain SQL dumps (maybe gzipped) stream once through a filter into psql.
"""

import contextlib
import enum
import gzip
import io
import re
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import IO

import psycopg
from pglast import ast, parse_sql
from pglast.parser import ParseError

from restore.errors import DumpError
from restore.guard import walk_nodes
from restore.pgtools import child_env, dsn_without_password, program, run_pg
from restore.targets import mask_dsn

Progress = Callable[[str], None]

_ARCHIVE_TIME = re.compile(r"^; Archive created at (?P<when>.+)$", re.M)
PLAIN_TIME = re.compile(r"^-- (?:Started on|Dump completed on|Completed on) (?P<when>.+)$")
_TOC_LINE = re.compile(r"^(?P<id>\d+); \d+ \d+ (?P<rest>.*)$")
_VERBOSE_ENTRY = re.compile(r"^-- TOC entry (?P<id>\d+) ")
ENTRY_HEADER = re.compile(
    r"^-- (?P<data>Data for )?Name: (?P<tag>.*); Type: (?P<desc>[A-Z ]+); Schema: (?P<ns>[^;]*); Owner: .*$"
)
OWNER_LINE = re.compile(r"^ALTER [A-Z ]+ OWNER TO ")

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
DATA_KINDS = {"TABLE DATA", "SEQUENCE SET"}
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
class Selection:
    """Which tables (qualified names) to restore and which sequences they need."""

    tables: set[str]
    sequences: set[str] = field(default_factory=set)
    dump_tables: set[str] = field(default_factory=set)


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
# Restoring


def restore_dump(
    dump: Path, fmt: DumpFormat, dsn: str, tables: Sequence[str], jobs: int, say: Progress
) -> tuple[datetime | None, list[str]]:
    """Restore `dump` (all of it, or `tables` and what they need) into the database at `dsn`.

    Returns the dump's own time (None when it records none) and the tables restored."""
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
    listing = run_pg("pg_restore", "-l", str(dump)).stdout
    match = _ARCHIVE_TIME.search(listing)
    backup_time = parse_dump_time(match["when"]) if match else None
    entries = parse_listing(listing)
    args = ["--no-owner", "--no-privileges", "--no-tablespaces", "--exit-on-error"]
    if fmt.parallel and jobs > 1:
        args += ["-j", str(jobs)]
    selected: list[str] = []
    with tempfile.TemporaryDirectory(prefix="rewind-list-") as scratch:
        if tables:
            attach_sql(entries, run_pg("pg_restore", "-v", "-s", "-f", "-", str(dump)).stdout)
            selection = select_tables(entries, tables)
            selected = sorted(selection.tables)
            list_file = Path(scratch) / "restore.list"
            kept = keep(entries, selection)
            list_file.write_text("".join(entry.list_line + "\n" for entry in kept))
            args += ["-L", str(list_file)]
            say(f"restoring {len(selected)} table(s), {len(kept)} of {len(entries)} dump items")
        else:
            say(f"restoring all {len(entries)} dump items")
        run_pg("pg_restore", *args, str(dump), dsn=dsn)
    return backup_time, selected


def parse_listing(listing: str) -> list[TocEntry]:
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


def attach_sql(entries: list[TocEntry], schema_script: str) -> None:
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


# ---------------------------------------------------------------------------------------------------------------
# Choosing what to restore for --table


def select_tables(entries: list[TocEntry], wanted: Sequence[str]) -> Selection:
    available = {entry.qualified for entry in entries if entry.kind == "TABLE"}
    selection = Selection(tables={_resolve_table(name, available) for name in wanted}, dump_tables=available)
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


def keep(entries: Iterable[TocEntry], selection: Selection) -> list[TocEntry]:
    return [entry for entry in entries if wanted(entry, selection)]


def wanted(entry: TocEntry, selection: Selection) -> bool:
    if entry.kind in ("TABLE", "TABLE DATA"):
        return entry.qualified in selection.tables
    if entry.kind in ("SEQUENCE", "SEQUENCE SET"):
        return entry.qualified in selection.sequences
    if entry.kind in _SUPPORT_KINDS:
        # Types, functions and the like stay unless they name a table left out (a function returning SETOF it).
        return not (relations_named(entry) & selection.dump_tables) - selection.tables
    if entry.kind in _ATTACHED_KINDS or entry.kind == "SEQUENCE OWNED BY":
        return _attached_to_selection(entry, selection)
    return False  # views, triggers, policies, comments, ACLs, ...: not part of a table-level replica


def _attached_to_selection(entry: TocEntry, selection: Selection) -> bool:
    """True when the tables the entry names are all selected (an FK needs both ends), and there is one."""
    tables = relations_named(entry) & selection.dump_tables
    return bool(tables) and tables <= selection.tables


def _sequences_named(entry: TocEntry) -> set[str]:
    """Sequences an entry creates or uses: the subject of SEQUENCE / OWNED BY, or nextval('s') in a DEFAULT."""
    found = {entry.qualified} if entry.kind in ("SEQUENCE", "SEQUENCE OWNED BY") else set()
    for node in _nodes(entry):
        if isinstance(node, ast.FuncCall) and _last_name(node.funcname) == "nextval":
            constants = (c for c in walk_nodes(node.args) if isinstance(c, ast.A_Const))
            found |= {_qualify(c.val.sval) for c in constants if isinstance(c.val, ast.String)}
    return found


def relations_named(entry: TocEntry) -> set[str]:
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
    env = child_env()
    psql = program("psql")
    command = [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "--no-password", "-d", dsn_without_password(dsn, env)]
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
        self.selection = Selection(tables=set())
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
                    sink.writelines(line for line in lines if not OWNER_LINE.match(line))
            elif entry.kind in DATA_KINDS:
                if pending or not self.selection.tables:
                    self._decide(pending, sink)
                    pending = []
                if wanted(entry, self.selection):
                    sink.writelines(lines)
            else:
                entry.sql_text = "".join(line for line in lines if _is_schema_sql(line))
                pending.append(entry)
        if self.wanted:
            self._decide(pending, sink)
        self.backup_time = self._times.get("Started") or self._times.get("Completed")

    def _decide(self, pending: list[TocEntry], sink: IO[str]) -> None:
        if not self.selection.tables:
            self.selection = select_tables(pending, self.wanted)
        for entry in keep(pending, self.selection):
            sink.write(entry.sql_text)

    def _note_time(self, line: str) -> None:
        match = PLAIN_TIME.match(line)
        if match:
            self._times["Started" if "Started" in line else "Completed"] = parse_dump_time(match["when"])


def _is_schema_sql(line: str) -> bool:
    # Ownership needs the dump's roles, and a trailing `\\unrestrict` is a psql meta-command, not SQL.
    return not (OWNER_LINE.match(line) or line.startswith("\\"))


class _ItemReader:
    """Splits a plain dump at item headers; inside COPY data it looks for nothing but the closing `\\.`."""

    def __init__(self, source: IO[str], on_comment: Callable[[str], None]) -> None:
        self._source = source
        self._on_comment = on_comment
        self._next: TocEntry | None = None

    def items(self) -> Iterator[tuple[TocEntry | None, Iterator[str]]]:
        entry: TocEntry | None = None  # the preamble comes first
        while True:
            lines = self._lines(copy_data=entry is not None and entry.kind in DATA_KINDS)
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
                header = ENTRY_HEADER.match(line.rstrip("\r\n"))
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
