"""Cluster dumps: `pg_dumpall` output and Supabase's `db_cluster-*.backup`, plain or gzipped.

One database of the dump is restored into a scratch database, in one streamed pass over the file:

- the roles section: each role the dump creates is created when missing, as NOLOGIN; a role that exists already
  (`postgres` included) is left as it is; memberships are granted only between roles created here;
- `\\connect` lines say which database each later statement belongs to; only the chosen database's statements run
  (the default: `postgres` when it holds tables, as on Supabase, else the only database that does);
- an extension the server lacks is skipped, and so is each object that then fails for want of it, each reported by
  name; data loads with `session_replication_role = replica` (triggers off), COPY blocks streamed in large chunks;
- with tables named, only the items those tables need run (their definitions, data, keys, indexes, RLS policies,
  grants and triggers) plus the tables their foreign keys reference, at any depth. Foreign keys come after the data in
  a dump, so a referenced table found only then has its data read in a second pass over the file.

Statements run one by one over one connection in autocommit, so a failure skips that object only; a failure in an
item of a table asked for is an error, since a restore that silently lacks a wanted table is worse than none.
"""

import contextlib
import gzip
import queue
import re
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

import psycopg
from pglast import ast, parse_sql
from pglast.parser import ParseError
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from pydantic import BaseModel

from restore.dump import (
    DATA_KINDS,
    ENTRY_HEADER,
    PLAIN_TIME,
    DumpFormat,
    Progress,
    Selection,
    TocEntry,
    parse_dump_time,
    relations_named,
    select_tables,
    wanted,
)
from restore.errors import DumpError
from restore.targets import mask_dsn

CLUSTER_MARK = b"-- PostgreSQL database cluster dump"
CHUNK = 1 << 20
# COPY blocks stream on a connection of their own, so one table's rows still load while the file is read on. One:
# on two cores, two loading backends beside the decompressor and this reader were slower than one (measured at 1 GB).
# The connection queues at most _QUEUED_CHUNKS chunks.
_LOADERS = 1
_QUEUED_CHUNKS = 16
_SUPABASE_NAME = re.compile(r"db_cluster-(\d{2})-(\d{2})-(\d{4})@(\d{2})-(\d{2})-(\d{2})")
_CONNECT = re.compile(r"""^\\c(?:onnect)?\s+(?:-reuse-previous=\S+\s+)?(?P<arg>"(?:[^"]|"")*"|\S+)""")
_CONNSTR_DBNAME = re.compile(r"""dbname='(?P<name>(?:[^'\\]|\\.|'')*)'""")
_NORMAL_TOKEN = re.compile(r"""[eE]'|'|"|--|/\*|;|\$(?:[A-Za-z_\x80-\uffff][\w\x80-\uffff]*)?\$""")
_E_STRING = re.compile(r"[\\']")
_BLOCK_COMMENT = re.compile(r"/\*|\*/")
_IDENT_CHAR = re.compile(r"[\w$\x80-\uffff]")
_COPY_FROM_STDIN = re.compile(r"^COPY .* FROM stdin;\s*$", re.S)
_SESSION_AUTH = re.compile(r"^(?:SET|RESET) SESSION AUTHORIZATION\b", re.I)
_CREATE_PLAIN_TABLE = re.compile(r"^CREATE (?:UNLOGGED )?TABLE (?!.*\)\s*PARTITION BY )", re.S)
_DATABASE_LEVEL = re.compile(r"^(?:CREATE|ALTER|DROP|COMMENT ON) DATABASE\b", re.I)

# Items of a table asked for: if one of them fails, the restore is not what was asked for.
_TABLE_ITEMS = {
    "TABLE", "TABLE DATA", "CONSTRAINT", "FK CONSTRAINT", "CHECK CONSTRAINT", "INDEX", "DEFAULT", "ROW SECURITY",
    "POLICY", "SEQUENCE", "SEQUENCE OWNED BY", "SEQUENCE SET", "ACL",
}  # fmt: skip
# Items that belong to the tables they name, kept with them (besides what restore.dump keeps for any dump).
_SECURITY_KINDS = {"ROW SECURITY", "POLICY", "TRIGGER", "ACL", "COMMENT"}
# Errors meaning "already there": a fresh database has plpgsql and the public schema, a shared server has roles.
_ALREADY_THERE = {"42710", "42P06", "42723", "42P07", "42P04", "42701"}


class SkippedItem(BaseModel):
    """An item of the dump that was not restored, and why."""

    kind: str
    name: str
    reason: str


class ClusterLoad(BaseModel):
    """What restoring one database of a cluster dump did."""

    database: str
    databases: list[str]
    backup_time: datetime | None
    backup_time_source: str | None
    tables: list[str]
    roles_created: list[str]
    skipped_extensions: list[str]
    skipped: list[SkippedItem]
    triggers_off: bool


def is_cluster_dump(dump: Path, fmt: DumpFormat) -> bool:
    """Whether a plain (maybe gzipped) dump is a cluster dump, from its first lines, whatever the file's name."""
    if fmt not in (DumpFormat.PLAIN, DumpFormat.PLAIN_GZIP):
        return False
    opener = gzip.open if fmt is DumpFormat.PLAIN_GZIP else open
    with opener(dump, "rb") as handle:
        head = handle.read(4096)
    return CLUSTER_MARK in head


def time_from_file_name(dump: Path) -> datetime | None:
    """Supabase names its backups `db_cluster-DD-MM-YYYY@HH-MM-SS.backup`, in UTC."""
    match = _SUPABASE_NAME.search(dump.name)
    if not match:
        return None
    day, month, year, hour, minute, second = (int(part) for part in match.groups())
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        return None


def restore_cluster_dump(
    dump: Path,
    fmt: DumpFormat,
    dsn: str,
    *,
    database: str | None = None,
    tables: Sequence[str] = (),
    say: Progress | None = None,
) -> ClusterLoad:
    """Restore one database of a cluster dump (all of it, or `tables` and the tables they reference) into `dsn`."""
    say = say or (lambda message: None)
    with psycopg.connect(dsn, autocommit=True, prepare_threshold=None) as conn:
        run = _ClusterRun(conn, dump, fmt, database, list(tables), say)
        try:
            load = run.run()
        finally:
            run.close()
        if load is None:  # the default database held no tables: the one database that does, in a second pass
            choice = run.fallback_database()
            say(f"database postgres holds no tables; restoring {choice}")
            again = _ClusterRun(conn, dump, fmt, choice, list(tables), say, roles_done=True)
            try:
                load = again.run()
            finally:
                again.close()
            assert load is not None
            load.roles_created = run.roles_created
    return load


# ---------------------------------------------------------------------------------------------------------------
# Reading the file


def decompressor() -> str | None:
    """pigz when installed (it inflates about twice as fast as gzip, in threads of its own), else gzip."""
    return shutil.which("pigz") or shutil.which("gzip")


@contextlib.contextmanager
def _open_binary(dump: Path, fmt: DumpFormat) -> Iterator[BinaryIO]:
    """The dump's bytes. pigz or gzip runs in its own process, so the file inflates while we load."""
    if fmt is not DumpFormat.PLAIN_GZIP:
        with dump.open("rb", buffering=0) as handle:
            yield handle  # type: ignore[misc]
        return
    gunzip = decompressor()
    if gunzip is None:
        with gzip.open(dump, "rb") as handle:
            yield handle  # type: ignore[misc]
        return
    proc = subprocess.Popen([gunzip, "-dc", str(dump)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    try:
        yield proc.stdout
    finally:
        proc.stdout.close()
        proc.kill()
        proc.wait()


class _Source:
    """Lines and COPY blocks of a dump, read in large chunks: a COPY block is passed on without splitting lines."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._buf = b""
        self._pos = 0
        self.pending = False  # a COPY line was read and its data not yet

    def _fill(self) -> bool:
        more = self._raw.read(CHUNK)
        if not more:
            return False
        self._buf = self._buf[self._pos :] + more
        self._pos = 0
        return True

    def readline(self) -> bytes:
        while True:
            end = self._buf.find(b"\n", self._pos)
            if end >= 0:
                line = self._buf[self._pos : end + 1]
                self._pos = end + 1
                return line
            if not self._fill():
                line = self._buf[self._pos :]
                self._buf, self._pos = b"", 0
                return line

    def copy_block(self, write: Callable[[bytes], object] | None) -> None:
        """Pass the data after a `COPY ... FROM stdin;` line to `write` (or drop it), up to and without `\\.`.

        Writes end at a line's end, so after a failed write the rest can still be dropped with `copy_block(None)`."""
        if not self.pending:
            return
        while True:
            buf, pos = self._buf, self._pos
            if buf.startswith(b"\\.\n", pos) or buf.startswith(b"\\.\r\n", pos):
                self._pos = buf.index(b"\n", pos) + 1
                break
            end = buf.find(b"\n\\.\n", pos)
            if end < 0:
                end = buf.find(b"\n\\.\r\n", pos)
            if end >= 0:
                if write is not None:
                    write(buf[pos : end + 1])
                self._pos = buf.index(b"\n", end + 1) + 1
                break
            last = buf.rfind(b"\n", pos)
            if last >= 0:
                if write is not None:
                    write(buf[pos : last + 1])
                self._pos = last + 1
            if not self._fill():
                rest = self._buf[self._pos :]
                if rest.rstrip(b"\r\n") == b"\\.":
                    self._buf, self._pos = b"", 0
                    break
                raise DumpError("The dump ends inside a COPY block: it is truncated; fetch the whole file again.")
        self.pending = False


class _StatementEnd:
    """Tells where an SQL statement ends, across lines: quotes, dollar quotes, comments and E'' strings."""

    def __init__(self) -> None:
        self.state: str | None = None
        self.depth = 0
        self.ended = False

    def feed(self, line: str) -> bool:
        """Scan one more line; True when the statement ends with this line."""
        i, n = 0, len(line)
        while i < n:
            state = self.state
            if state is None:
                match = _NORMAL_TOKEN.search(line, i)
                if match is None:
                    if line[i:].strip():
                        self.ended = False
                    break
                if line[i : match.start()].strip():
                    self.ended = False
                token, i = match.group(), match.end()
                if token == ";":
                    self.ended = True
                    continue
                self.ended = False
                if token == "--":
                    break
                if token == "/*":
                    self.state, self.depth = "/*", 1
                elif token in ("e'", "E'"):
                    start = match.start()
                    plain = start > 0 and _IDENT_CHAR.match(line, start - 1) is not None
                    self.state = "'" if plain else "e"
                elif token.startswith("$"):
                    if match.start() > 0 and _IDENT_CHAR.match(line, match.start() - 1):
                        i = match.start() + 1  # part of an identifier such as a$b$
                    else:
                        self.state = token
                else:
                    self.state = token
            elif state in ("'", '"'):
                j = line.find(state, i)
                if j < 0:
                    break
                if line.startswith(state, j + 1):
                    i = j + 2
                else:
                    self.state, i = None, j + 1
            elif state == "e":
                match = _E_STRING.search(line, i)
                if match is None:
                    break
                if match.group() == "\\" or line.startswith("'", match.end()):
                    i = match.end() + 1
                else:
                    self.state, i = None, match.end()
            elif state == "/*":
                match = _BLOCK_COMMENT.search(line, i)
                if match is None:
                    break
                self.depth += 1 if match.group() == "/*" else -1
                i = match.end()
                if self.depth == 0:
                    self.state = None
            else:  # a dollar quote
                j = line.find(state, i)
                if j < 0:
                    break
                self.state, i = None, j + len(state)
        return self.state is None and self.ended


@dataclass
class _Item:
    """One item of one database: its header (None for the SET preamble), statements, and a COPY awaiting its data."""

    database: str | None
    entry: TocEntry | None
    statements: list[str] = field(default_factory=list)
    copy: str | None = None


class _Reader:
    """Splits a cluster dump into items, following `\\connect` to know each item's database."""

    def __init__(self, source: _Source) -> None:
        self.source = source
        self.database: str | None = None
        self.started: datetime | None = None
        self.completed: datetime | None = None

    def items(self) -> Iterator[_Item]:
        source = self.source
        item = _Item(None, None)
        text: list[str] = []
        end = _StatementEnd()
        while True:
            raw = source.readline()
            if not raw:
                break
            line = raw.decode("utf-8", "surrogateescape")
            if not text:
                if line.startswith("--"):
                    header = ENTRY_HEADER.match(line.rstrip("\r\n"))
                    if header:
                        if item.statements or item.entry is not None:
                            yield item
                        entry = TocEntry(header["desc"].strip(), header["ns"], header["tag"])
                        item = _Item(self.database, entry)
                    else:
                        self._note_time(line)
                    continue
                if not line.strip():
                    continue
                if line.startswith("\\"):
                    connect = _CONNECT.match(line)
                    if connect:
                        if item.statements or item.entry is not None:
                            yield item
                        self.database = _connect_target(connect["arg"])
                        item = _Item(self.database, None)
                    continue  # other meta-commands (\restrict, \unrestrict) are psql's business
            text.append(line)
            if not end.feed(line):
                continue
            statement = "".join(text).strip()
            text, end = [], _StatementEnd()
            if _COPY_FROM_STDIN.match(statement):
                item.copy = statement
                source.pending = True
                yield item
                source.copy_block(None)  # whatever the consumer left unread
                item = _Item(self.database, None)
                continue
            item.statements.append(statement)
        if text and "".join(text).strip():
            item.statements.append("".join(text).strip())
        if item.statements or item.entry is not None:
            yield item

    def _note_time(self, line: str) -> None:
        match = PLAIN_TIME.match(line.rstrip("\r\n"))
        if not match:
            return
        when = parse_dump_time(match["when"])
        if "Started" in line:
            self.started = self.started or when
        else:
            self.completed = when


def _connect_target(arg: str) -> str:
    if arg.startswith('"'):
        arg = arg[1:-1].replace('""', '"')
    named = _CONNSTR_DBNAME.search(arg)
    if named:
        return named["name"].replace("''", "'").replace("\\'", "'")
    return arg


# ---------------------------------------------------------------------------------------------------------------
# Restoring


class _ClusterRun:
    """One pass (two with tables whose foreign keys reach further) over the dump into one connection."""

    def __init__(
        self,
        conn: psycopg.Connection,
        dump: Path,
        fmt: DumpFormat,
        database: str | None,
        tables: list[str],
        say: Progress,
        *,
        roles_done: bool = False,
    ) -> None:
        self.conn = conn
        self.dump = dump
        self.fmt = fmt
        self.explicit = database is not None
        self.target = database or "postgres"
        self.tables = tables
        self.say = say
        self.roles_done = roles_done
        self.roles_created: list[str] = []
        self.skipped: list[SkippedItem] = []
        self.skipped_extensions: list[str] = []
        self.databases: list[str] = []
        self.tables_per_database: dict[str, int] = {}
        self.superuser = _is_superuser(conn)
        self.available = {row[0] for row in conn.execute("SELECT name FROM pg_available_extensions")}
        self.selection = Selection(tables=set())
        self.pre_data: list[_Item] = []
        self.post_data: list[_Item] = []
        self.loaded: set[str] = set()
        self.data_tables: set[str] = set()
        self.created_tables: set[str] = set()  # plain tables this run created: their data may load with FREEZE
        self.dsn = conn.info.dsn if not conn.pgconn.password else _with_password(conn)
        self.loaders: list[_Loader] = []
        self.next_loader = 0
        self.started_table = False
        self.triggers_off = False

    # --- the pass -------------------------------------------------------------------------------------------------

    def run(self) -> ClusterLoad | None:
        self.triggers_off = self._triggers_off()
        with _open_binary(self.dump, self.fmt) as raw:
            reader = _Reader(_Source(raw))
            held: list[_Item] = []
            globals_: list[str] = []
            for item in reader.items():
                if item.database is None:
                    globals_ += item.statements
                    continue
                if globals_ and not self.roles_done:
                    self._roles(globals_)
                    self.roles_done = True
                globals_ = []
                if item.database not in self.databases:
                    self.databases.append(item.database)
                if item.database != self.target:
                    if self.started_table:
                        break  # the chosen database's section is over: the rest of the file is not needed
                    self._count_tables(item)
                    continue
                if not self.explicit and not self.started_table:
                    # Hold the section until it shows a table: a default `postgres` without tables is not the one.
                    if item.entry is not None and item.entry.kind == "TABLE":
                        self.started_table = True
                        for earlier in held:
                            self._item(earlier, reader.source)
                        held = []
                    else:
                        held.append(item)
                        continue
                self.started_table = True
                self._item(item, reader.source)
            if globals_ and not self.roles_done:
                self._roles(globals_)
            header_time = reader.started or reader.completed
        if self.target not in self.databases:
            if self.explicit:
                shown = ", ".join(self.databases) or "none"
                raise DumpError(f"The dump has no database {self.target!r}; its databases: {shown}. Pass --database.")
            return None
        if not self.started_table and not self.explicit:
            return None
        if self.tables:
            self._finish_selection()
        self._drain()
        when, source = (header_time, "dump-header") if header_time else (time_from_file_name(self.dump), "file-name")
        self._reset_triggers()
        return ClusterLoad(
            database=self.target,
            databases=self.databases,
            backup_time=when,
            backup_time_source=source if when else None,
            tables=sorted(self.selection.tables) if self.tables else _tables_in(self.conn),
            roles_created=self.roles_created,
            skipped_extensions=self.skipped_extensions,
            skipped=self.skipped,
            triggers_off=self.triggers_off,
        )

    def fallback_database(self) -> str:
        with_tables = sorted(name for name, count in self.tables_per_database.items() if count)
        if len(with_tables) == 1:
            return with_tables[0]
        shown = ", ".join(f"{name} ({self.tables_per_database[name]} tables)" for name in with_tables)
        if not with_tables:
            raise DumpError(f"No database in the dump holds tables (databases: {', '.join(self.databases) or 'none'}).")
        raise DumpError(f"Several databases in the dump hold tables: {shown}. Pass --database NAME.")

    def _count_tables(self, item: _Item) -> None:
        count = self.tables_per_database.setdefault(item.database or "", 0)
        if item.entry is not None and item.entry.kind == "TABLE":
            self.tables_per_database[item.database or ""] = count + 1

    # --- roles ----------------------------------------------------------------------------------------------------

    def _roles(self, statements: list[str]) -> None:
        creates: list[str] = []
        grants: list[tuple[str, str]] = []
        for statement in statements:
            try:
                parsed = parse_sql(statement)
            except ParseError:
                continue
            for raw in parsed:
                node = raw.stmt
                if isinstance(node, ast.CreateRoleStmt):
                    creates.append(node.role)
                elif isinstance(node, ast.GrantRoleStmt) and node.is_grant:
                    for granted in node.granted_roles or ():
                        for grantee in node.grantee_roles or ():
                            if getattr(grantee, "rolename", None):
                                grants.append((granted.priv_name, grantee.rolename))
        existing = {row[0] for row in self.conn.execute("SELECT rolname FROM pg_roles")}
        for role in creates:
            if role in existing or role.startswith("pg_"):
                continue
            try:
                self.conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
            except psycopg.errors.DuplicateObject:
                continue
            except psycopg.Error as exc:
                self._skip("ROLE", role, exc)
                continue
            self.roles_created.append(role)
            existing.add(role)
        created = set(self.roles_created)
        for role, member in grants:
            if member in created and role in existing:
                try:
                    self.conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(role), sql.Identifier(member)))
                except psycopg.Error as exc:
                    self._skip("ROLE MEMBERSHIP", f"{role} to {member}", exc)
        if self.roles_created:
            self.say(f"created {len(self.roles_created)} role(s) as NOLOGIN: {', '.join(self.roles_created)}")

    def _item(self, item: _Item, source: _Source) -> None:
        if self.tables:
            self._selected(item, source)
        else:
            self._whole(item, source)

    # --- a whole database -----------------------------------------------------------------------------------------

    def _whole(self, item: _Item, source: _Source) -> None:
        self._execute(item, required=False)
        if item.copy is not None:
            self._copy(item, source, required=False)

    # --- some tables ----------------------------------------------------------------------------------------------

    def _selected(self, item: _Item, source: _Source) -> None:
        entry = item.entry
        if entry is None:
            self._execute(item, required=False)
            if item.copy is not None:
                source.copy_block(None)
            return
        if entry.kind in DATA_KINDS:
            if entry.kind == "TABLE DATA":
                self.data_tables.add(entry.qualified)
            if not self.selection.tables:
                self._decide_pre_data()
            if self._keeps(entry, self.selection):
                self._execute(item, required=True)
                if item.copy is not None:
                    self._copy(item, source, required=True)
            elif item.copy is not None:
                source.copy_block(None)
            return
        if item.copy is not None:
            source.copy_block(None)
            return
        entry.sql_text = "".join(s + "\n" for s in item.statements if not _SESSION_AUTH.match(s))
        if self.selection.tables:
            self.post_data.append(item)
        else:
            self.pre_data.append(item)

    def _decide_pre_data(self) -> None:
        self.selection = select_tables([i.entry for i in self.pre_data if i.entry], self.tables)
        self.say(f"restoring {len(self.selection.tables)} table(s) of database {self.target}")
        for item in self.pre_data:
            if item.entry and self._keeps(item.entry, self.selection):
                self._execute(item, required=self._required(item.entry))

    def _finish_selection(self) -> None:
        if not self.selection.tables:  # a database without data items: decide on its definitions alone
            self._decide_pre_data()
        before = self.selection
        wanted_now = set(before.tables)
        while True:
            grown = wanted_now | self._referenced(wanted_now)
            if grown == wanted_now:
                break
            wanted_now = grown
        extra = wanted_now - before.tables
        if extra:
            self.say(f"their foreign keys need {len(extra)} more table(s): {', '.join(sorted(extra))}")
            after = select_tables([i.entry for i in self.pre_data if i.entry], sorted(wanted_now))
            for item in self.pre_data:
                entry = item.entry
                if entry and self._keeps(entry, after) and not self._keeps(entry, before):
                    self._execute(item, required=self._required(entry, after))
            self.selection = after
            self._second_pass(before, after)
        for item in self.post_data:
            if item.entry and self._keeps(item.entry, self.selection):
                self._execute(item, required=self._required(item.entry))
        self._drain()
        # A table whose data the dump carries (no data item at all: taken with --exclude-table-data) must be loaded.
        missing = sorted((self.selection.tables & self.data_tables) - self.loaded)
        if missing:
            raise DumpError(f"The data of {', '.join(missing)} was not loaded; the dump may be truncated.")

    def _referenced(self, tables: set[str]) -> set[str]:
        found: set[str] = set()
        for item in self.post_data:
            entry = item.entry
            if entry is None or entry.kind != "FK CONSTRAINT":
                continue
            for statement in parse_sql(entry.sql_text or ";"):
                node = statement.stmt
                if not isinstance(node, ast.AlterTableStmt):
                    continue
                child = f"{node.relation.schemaname or entry.namespace}.{node.relation.relname}"
                if child not in tables:
                    continue
                for cmd in node.cmds or ():
                    constraint = getattr(cmd, "def_", None)
                    if isinstance(constraint, ast.Constraint) and constraint.pktable is not None:
                        parent = constraint.pktable
                        found.add(f"{parent.schemaname or entry.namespace}.{parent.relname}")
        return found - tables

    def _second_pass(self, before: Selection, after: Selection) -> None:
        with _open_binary(self.dump, self.fmt) as raw:
            reader = _Reader(_Source(raw))
            seen_target = False
            for item in reader.items():
                if item.database != self.target:
                    if item.copy is not None:
                        reader.source.copy_block(None)
                    if seen_target and item.database is not None:
                        break
                    continue
                seen_target = True
                entry = item.entry
                new = entry is not None and entry.kind in DATA_KINDS
                new = new and self._keeps(entry, after) and not self._keeps(entry, before)  # type: ignore[arg-type]
                if new:
                    self._execute(item, required=True)
                    if item.copy is not None:
                        self._copy(item, reader.source, required=True)
                elif item.copy is not None:
                    reader.source.copy_block(None)

    def _keeps(self, entry: TocEntry, selection: Selection) -> bool:
        if entry.kind in ("DATABASE", "DATABASE PROPERTIES"):
            return False
        if entry.kind in _SECURITY_KINDS:
            named = _subjects(entry) & selection.dump_tables
            if named:
                return named <= selection.tables
            return entry.kind in ("ACL", "COMMENT") and _subject_is_kept(entry, selection)
        return wanted(entry, selection)

    def _required(self, entry: TocEntry, selection: Selection | None = None) -> bool:
        selection = selection or self.selection
        if entry.kind not in _TABLE_ITEMS:
            return False
        named = _subjects(entry) & selection.dump_tables
        return bool(named) and named <= selection.tables

    # --- running statements ---------------------------------------------------------------------------------------

    def _execute(self, item: _Item, *, required: bool) -> None:
        entry = item.entry
        if entry is not None and entry.kind in ("DATABASE", "DATABASE PROPERTIES"):
            return
        if entry is not None and entry.kind == "EXTENSION" and not self._extension_available(entry):
            return
        needs = _extension_of_comment(entry)
        if needs in self.skipped_extensions:
            self.skipped.append(SkippedItem(kind="COMMENT", name=f"EXTENSION {needs}", reason=f"needs {needs}"))
            return
        if entry is None or entry.kind not in DATA_KINDS:
            self._drain()
        for statement in item.statements:
            if _DATABASE_LEVEL.match(statement):
                continue  # the scratch database is the restore's own; the dump's database settings are not
            if not self.superuser and (_SESSION_AUTH.match(statement) or _is_owner_change(statement)):
                continue  # ownership needs the roles' privileges; the restoring user owns everything instead
            try:
                self.conn.execute(statement)
            except psycopg.Error as exc:
                if exc.sqlstate in _ALREADY_THERE:
                    continue
                self._failed(entry, exc, required)
            else:
                if entry is not None and entry.kind == "TABLE" and _CREATE_PLAIN_TABLE.match(statement):
                    self.created_tables.add(entry.qualified)

    def _copy(self, item: _Item, source: _Source, *, required: bool) -> None:
        """Hand one COPY block to the loader connection, which streams it while the file is read on.

        Into a table this run created, the COPY runs in the transaction that truncates it (still empty) and with
        FREEZE: Postgres then need not WAL-log the rows under wal_level=minimal, nor set hint bits on every row the
        first time it is read."""
        assert item.copy is not None
        entry = item.entry
        truncate = None
        statement = item.copy
        if entry is not None and entry.qualified in self.created_tables:
            truncate = sql.SQL("TRUNCATE ONLY {}").format(sql.Identifier(entry.namespace, entry.tag))
            statement = item.copy.rstrip().removesuffix(";") + " WITH (FREEZE)"
        if not self.loaders:
            self.loaders = [_Loader(self.dsn) for _ in range(_LOADERS)]
        loader = self.loaders[self.next_loader % len(self.loaders)]
        self.next_loader += 1
        self._collect(loader.wait())
        loader.start(statement, truncate, (entry, required))
        source.copy_block(loader.put)
        loader.end()

    def _collect(self, done: "tuple[tuple[TocEntry | None, bool], psycopg.Error | None] | None") -> None:
        if done is None:
            return
        (entry, required), error = done
        if error is not None:
            self._failed(entry, error, required)
        elif entry is not None:
            self.loaded.add(entry.qualified)

    def _drain(self) -> None:
        """Wait for every COPY in flight: what comes next (an index, a key) needs the rows."""
        for loader in self.loaders:
            self._collect(loader.wait())

    def close(self) -> None:
        for loader in self.loaders:
            loader.close()
        self.loaders = []

    def _extension_available(self, entry: TocEntry) -> bool:
        if entry.tag in self.available:
            return True
        self.skipped_extensions.append(entry.tag)
        self.skipped.append(SkippedItem(kind="EXTENSION", name=entry.tag, reason="not available on this server"))
        self.say(f"skipping extension {entry.tag}: not available on this server")
        return False

    def _failed(self, entry: TocEntry | None, exc: psycopg.Error, required: bool) -> None:
        kind = entry.kind if entry else "SETTING"
        name = _display_name(entry) if entry else ""
        reason = mask_dsn(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
        if required:
            raise DumpError(f"Could not restore {kind} {name}, which a table asked for needs: {reason}")
        self.skipped.append(SkippedItem(kind=kind, name=name, reason=reason))

    def _skip(self, kind: str, name: str, exc: psycopg.Error) -> None:
        self.skipped.append(SkippedItem(kind=kind, name=name, reason=str(exc).strip().splitlines()[0]))

    def _triggers_off(self) -> bool:
        try:
            self.conn.execute("SET session_replication_role = replica")
        except psycopg.Error:
            return False  # not a superuser: pg_dump creates triggers after the data, so none fire during COPY
        return True

    def _reset_triggers(self) -> None:
        with contextlib.suppress(psycopg.Error):
            self.conn.execute("RESET session_replication_role")


def _display_name(entry: TocEntry) -> str:
    """`auth.users`, or for a grant or comment `TABLE auth.users` (pg_dump's tag names the object's kind first)."""
    if entry.namespace in ("-", ""):
        return entry.tag
    if entry.kind in ("ACL", "COMMENT") and " " in entry.tag:
        what, name = entry.tag.split(" ", 1)
        return f"{what} {entry.namespace}.{name}"
    return entry.qualified


def _with_password(conn: psycopg.Connection) -> str:
    params = conninfo_to_dict(conn.info.dsn)
    params["password"] = conn.pgconn.password.decode()
    return make_conninfo(**params)


class _Loader:
    """A connection of its own that runs one COPY at a time in a thread, fed through a bounded queue of chunks."""

    def __init__(self, dsn: str) -> None:
        self.conn = psycopg.connect(dsn, autocommit=True)
        with contextlib.suppress(psycopg.Error):
            self.conn.execute("SET session_replication_role = replica")
        self.queue: queue.Queue[bytes | None] = queue.Queue(maxsize=_QUEUED_CHUNKS)
        self.thread: threading.Thread | None = None
        self.tag: tuple[TocEntry | None, bool] | None = None
        self.error: psycopg.Error | None = None

    def start(self, statement: str, truncate: sql.Composable | None, tag: tuple[TocEntry | None, bool]) -> None:
        self.tag, self.error = tag, None
        self.thread = threading.Thread(target=self._run, args=(statement, truncate), daemon=True)
        self.thread.start()

    def put(self, chunk: bytes) -> None:
        self.queue.put(chunk)

    def end(self) -> None:
        self.queue.put(None)

    def wait(self) -> tuple[tuple[TocEntry | None, bool], psycopg.Error | None] | None:
        """The finished COPY's (tag, error), or None when none was running."""
        if self.thread is None:
            return None
        self.thread.join()
        self.thread = None
        assert self.tag is not None
        return self.tag, self.error

    def close(self) -> None:
        if self.thread is not None:
            self.wait()
        self.conn.close()

    def _run(self, statement: str, truncate: sql.Composable | None) -> None:
        ended = False
        try:
            with self.conn.transaction(), self.conn.cursor() as cur:
                if truncate is not None:
                    cur.execute(truncate)
                with cur.copy(statement) as copy:
                    while (chunk := self.queue.get()) is not None:
                        copy.write(chunk)
                    ended = True
        except psycopg.Error as exc:
            self.error = exc
            while not ended and self.queue.get() is not None:
                pass  # the reader is still passing this block on: take it, so it never blocks


def _extension_of_comment(entry: TocEntry | None) -> str | None:
    if entry is None or entry.kind != "COMMENT" or not entry.tag.startswith("EXTENSION "):
        return None
    return entry.tag.removeprefix("EXTENSION ")


def _is_superuser(conn: psycopg.Connection) -> bool:
    row = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()
    return bool(row and row[0])


def _is_owner_change(statement: str) -> bool:
    return statement.startswith("ALTER ") and " OWNER TO " in statement


def _subjects(entry: TocEntry) -> set[str]:
    """The tables an item is about: from its SQL, or for comments and grants from its tag (`TABLE t`, `COLUMN t.c`)."""
    found = relations_named(entry)
    words = entry.tag.split(" ", 1)
    if len(words) == 2 and words[0] in ("TABLE", "COLUMN", "SEQUENCE", "VIEW"):
        name = words[1].split(".", 1)[0] if words[0] == "COLUMN" else words[1]
        found.add(f"{entry.namespace}.{name}")
    return found


def _subject_is_kept(entry: TocEntry, selection: Selection) -> bool:
    """Comments and grants on what is not a table (a schema, function or type): kept, they are cheap and harmless;
    on a sequence, kept with the sequence."""
    words = entry.tag.split(" ", 1)
    if words[0] == "SEQUENCE" and len(words) == 2:
        return f"{entry.namespace}.{words[1]}" in selection.sequences
    return words[0] not in ("TABLE", "COLUMN", "VIEW", "MATERIALIZED", "FOREIGN", "DATABASE")


def _tables_in(conn: psycopg.Connection) -> list[str]:
    query = """
        SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e')
        ORDER BY 1
    """
    return [row[0] for row in conn.execute(query)]
