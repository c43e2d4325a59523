"""Read-only queries against replica and backup targets: parser check, then a READ ONLY transaction.

Both checks apply and either one refuses: `restore.guard` classifies every statement, and the server runs them in a
READ ONLY transaction with a statement timeout, one statement per call (the extended query protocol), fetching at
most `limit + 1` rows through a server-side cursor. Sizes are capped too: wide values are cut on the server, and
fetching stops at about `max_bytes`; the result says what was cut.
"""

import time
from typing import Any

import psycopg
from pglast import ast, parse_sql
from psycopg import sql
from pydantic import BaseModel

from restore.errors import RewindError
from restore.guard import require_read_only
from restore.targets import Target, TargetRole, mask_dsn, require_role

_QUERYABLE_ROLES = (TargetRole.REPLICA, TargetRole.BACKUP)
_CURSOR_NAME = "rewind_query"
_CONNECT_TIMEOUT_S = 10
# A row cap is not a size cap: one row can hold half a gigabyte. These bound what a query hands back.
DEFAULT_MAX_BYTES = 1 << 20
DEFAULT_MAX_VALUE_CHARS = 10_000


class QueryFailed(RewindError):
    """The server refused or failed a query (the message is the server's, with DSNs masked)."""


class CutValue(BaseModel):
    """A value cut on the server to its first `kept_chars` characters; `original_bytes` is its full size as text."""

    row: int
    column: str
    column_index: int
    original_bytes: int
    kept_chars: int


class QueryResult(BaseModel):
    """The last statement's result: at most `limit` rows and about `max_bytes` of values.

    `truncated` says rows were withheld for either reason (`byte_capped` says it was the byte cap); `cut_values`
    lists the values cut to `max_value_chars` characters. `notes()` says all of it in words.
    """

    columns: list[str]
    rows: list[list[Any]]
    truncated: bool
    row_count: int
    seconds: float
    byte_capped: bool = False
    bytes: int = 0
    cut_values: list[CutValue] = []
    max_bytes: int = DEFAULT_MAX_BYTES
    max_value_chars: int = DEFAULT_MAX_VALUE_CHARS

    def notes(self) -> list[str]:
        """What was cut, one sentence each, for every interface to show under the rows."""
        notes: list[str] = []
        if self.byte_capped:
            notes.append(
                f"Stopped after {self.row_count:,} row(s): the next would pass the {human_size(self.max_bytes)} cap "
                "on a result. Select fewer or narrower columns."
            )
        elif self.truncated:
            notes.append(f"Stopped at the row limit ({self.row_count:,} rows); the query has more.")
        if self.cut_values:
            columns = sorted({cut.column for cut in self.cut_values})
            largest = max(cut.original_bytes for cut in self.cut_values)
            notes.append(
                f"{len(self.cut_values):,} value(s) in {', '.join(columns)} were cut to their first "
                f"{self.max_value_chars:,} characters (the largest was {human_size(largest)}). "
                "Select left(column, N) or length(column) to look at them."
            )
        return notes


def human_size(count: int) -> str:
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("kB", 1 << 10)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} bytes"


def run_read_only(
    target: Target,
    sql_text: str,
    *,
    limit: int = 100,
    timeout_s: float = 10,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_value_chars: int = DEFAULT_MAX_VALUE_CHARS,
) -> QueryResult:
    """Run provably read-only SQL on a replica or backup target; raises QueryRefused, TargetError or QueryFailed."""
    require_role(target, *_QUERYABLE_ROLES)
    if limit < 1 or max_bytes < 1 or max_value_chars < 1:
        raise QueryFailed("The row limit and the byte caps must be at least 1.")
    verdict = require_read_only(sql_text)
    return execute_in_read_only_transaction(
        target,
        verdict.statements,
        limit=limit,
        timeout_s=timeout_s,
        max_bytes=max_bytes,
        max_value_chars=max_value_chars,
    )


def execute_in_read_only_transaction(
    target: Target,
    statements: list[str],
    *,
    limit: int,
    timeout_s: float,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_value_chars: int = DEFAULT_MAX_VALUE_CHARS,
) -> QueryResult:
    """The server-side half of the check: a READ ONLY transaction that is always rolled back.

    Every statement goes through the extended query protocol, where one call carries exactly one statement: text
    that hides a `COMMIT; DROP ...` after a harmless SELECT is an error, whatever the parser said.
    """
    caps = _Caps(limit=limit, max_bytes=max_bytes, max_value_chars=max_value_chars)
    started = time.perf_counter()
    try:
        with psycopg.connect(target.require_dsn(), connect_timeout=_CONNECT_TIMEOUT_S) as conn:
            conn.read_only = True
            try:
                _set_timeouts(conn, timeout_s)
                result = caps.result([], [], truncated=False, byte_capped=False, size=0, cuts=[])
                for statement in statements:
                    result = _run_statement(conn, statement, caps)
            finally:
                conn.rollback()
    except psycopg.errors.QueryCanceled as exc:
        raise QueryFailed(
            f"{target.name}: query cancelled after {timeout_s:g}s ({_server_message(exc)}). "
            "Narrow the query or raise --timeout."
        ) from None
    except psycopg.Error as exc:
        raise QueryFailed(f"{target.name}: {_server_message(exc)}") from None
    result.seconds = round(time.perf_counter() - started, 3)
    return result


class _Caps(BaseModel):
    limit: int
    max_bytes: int
    max_value_chars: int

    def result(
        self,
        columns: list[str],
        rows: list[list[Any]],
        *,
        truncated: bool,
        byte_capped: bool,
        size: int,
        cuts: list[CutValue],
    ) -> QueryResult:
        return QueryResult(
            columns=columns,
            rows=rows,
            truncated=truncated or byte_capped,
            row_count=len(rows),
            seconds=0.0,
            byte_capped=byte_capped,
            bytes=size,
            cut_values=cuts,
            max_bytes=self.max_bytes,
            max_value_chars=self.max_value_chars,
        )


def _set_timeouts(conn: psycopg.Connection, timeout_s: float) -> None:
    millis = str(max(1, int(timeout_s * 1000)))
    for setting in ("statement_timeout", "lock_timeout"):
        conn.execute("SELECT set_config(%s, %s, true)", [setting, millis])


def _run_statement(conn: psycopg.Connection, statement: str, caps: _Caps) -> QueryResult:
    if not _is_cursor_query(statement):
        # EXPLAIN and SHOW: small results, and DECLARE CURSOR refuses them. Prepared, so one statement only.
        with conn.cursor() as cur:
            cur.execute(statement, prepare=True)
            return _fetch_and_cut_here(cur, caps)
    with conn.cursor(name=_CURSOR_NAME) as cur:
        # DECLARE plans without running: the columns and their types, before a single row is computed.
        cur.execute(statement)
        described = [(column.name, column.type_code) for column in cur.description or ()]
    if not described:
        with conn.cursor(name=_CURSOR_NAME) as cur:
            cur.execute(statement)
            return _fetch_capped(cur, caps, [], wide=[])
    wide = _variable_width(conn, [type_code for _, type_code in described])
    names = [name for name, _ in described]
    with conn.cursor(name=_CURSOR_NAME) as cur:
        # A server-side cursor so that a huge result is never transferred, over a query that cuts wide values.
        cur.execute(_cutting_query(statement, len(names), wide, caps.max_value_chars))
        return _fetch_capped(cur, caps, names, wide=wide)


def _variable_width(conn: psycopg.Connection, type_oids: list[int]) -> list[bool]:
    """Which columns can be wide: types without a fixed length (text, bytea, json, arrays, records, ...)."""
    rows = conn.execute("SELECT oid::bigint, typlen FROM pg_type WHERE oid = ANY(%s::oid[])", [type_oids]).fetchall()
    fixed = {oid for oid, typlen in rows if typlen > 0}
    return [oid not in fixed for oid in type_oids]


def _cutting_query(statement: str, width: int, wide: list[bool], max_chars: int) -> sql.Composed:
    """The statement wrapped so that each wide value longer than `max_chars` comes back as its first `max_chars`
    characters plus its size. The subqueries end in OFFSET 0 so that the planner computes each value once instead
    of inlining it into every expression that looks at it."""
    cols = [sql.Identifier(f"c{i}") for i in range(width)]
    sizes = [sql.Identifier(f"n{i}") for i in range(width)]
    cap = sql.Literal(max_chars)
    inner = sql.SQL("SELECT * FROM ({}\n) AS q0 ({}) OFFSET 0").format(sql.SQL(statement), sql.SQL(", ").join(cols))
    measured: list[sql.Composable] = list(cols)
    for i, col in enumerate(cols):
        if wide[i]:
            measured.append(
                sql.SQL(
                    "CASE WHEN octet_length({c}::text) > {cap} AND char_length({c}::text) > {cap} "
                    "THEN octet_length({c}::text) END AS {n}"
                ).format(c=col, cap=cap, n=sizes[i])
            )
    middle = sql.SQL("SELECT {} FROM ({}) AS q1 OFFSET 0").format(sql.SQL(", ").join(measured), inner)
    outer: list[sql.Composable] = []
    for i, col in enumerate(cols):
        if not wide[i]:
            outer.append(col)
            continue
        outer += [
            sql.SQL("CASE WHEN {n} IS NULL THEN {c} END").format(c=col, n=sizes[i]),
            sql.SQL("CASE WHEN {n} IS NOT NULL THEN left({c}::text, {cap}) END").format(c=col, n=sizes[i], cap=cap),
            sizes[i],
        ]
    return sql.SQL("SELECT {} FROM ({}) AS q2").format(sql.SQL(", ").join(outer), middle)


def _fetch_capped(cur: psycopg.ServerCursor, caps: _Caps, names: list[str], *, wide: list[bool]) -> QueryResult:
    """Fetch in batches sized to the bytes left, so the server stops sending about when the cap is reached."""
    rows: list[list[Any]] = []
    cuts: list[CutValue] = []
    size = 0
    batch = 10
    while True:
        wanted = min(batch, caps.limit + 1 - len(rows))
        fetched = cur.fetchmany(wanted)
        for raw in fetched:
            if len(rows) == caps.limit:
                return caps.result(names, rows, truncated=True, byte_capped=False, size=size, cuts=cuts)
            row, row_cuts = _unpack(raw, names, wide, len(rows), caps.max_value_chars)
            row_size = sum(_value_size(value) for value in row)
            if size + row_size > caps.max_bytes:
                return caps.result(names, rows, truncated=True, byte_capped=True, size=size, cuts=cuts)
            rows.append(row)
            cuts += row_cuts
            size += row_size
        if len(fetched) < wanted:
            return caps.result(names, rows, truncated=False, byte_capped=False, size=size, cuts=cuts)
        average = max(1, size // max(1, len(rows)))
        batch = max(1, min(500, (caps.max_bytes - size) // average))


def _unpack(
    raw: Any, names: list[str], wide: list[bool], row_index: int, max_chars: int
) -> tuple[list[Any], list[CutValue]]:
    values = list(raw)
    if not names:
        return values, []
    row: list[Any] = []
    cuts: list[CutValue] = []
    position = 0
    for index, (name, is_wide) in enumerate(zip(names, wide, strict=True)):
        if not is_wide:
            row.append(values[position])
            position += 1
            continue
        value, cut_text, original = values[position : position + 3]
        position += 3
        if original is None:
            row.append(value)
        else:
            row.append(cut_text)
            cuts.append(
                CutValue(row=row_index, column=name, column_index=index, original_bytes=original, kept_chars=max_chars)
            )
    return row, cuts


def _fetch_and_cut_here(cur: psycopg.Cursor, caps: _Caps) -> QueryResult:
    """EXPLAIN and SHOW results are cut on this side: they are small, and no cursor can wrap them."""
    names = [column.name for column in cur.description or ()]
    if not cur.description:
        return caps.result(names, [], truncated=False, byte_capped=False, size=0, cuts=[])
    rows: list[list[Any]] = []
    cuts: list[CutValue] = []
    size = 0
    for raw in cur.fetchmany(caps.limit + 1):
        if len(rows) == caps.limit:
            return caps.result(names, rows, truncated=True, byte_capped=False, size=size, cuts=cuts)
        row = []
        for index, (name, value) in enumerate(zip(names, raw, strict=True)):
            if isinstance(value, str) and len(value) > caps.max_value_chars:
                cuts.append(
                    CutValue(
                        row=len(rows),
                        column=name,
                        column_index=index,
                        original_bytes=len(value.encode()),
                        kept_chars=caps.max_value_chars,
                    )
                )
                value = value[: caps.max_value_chars]
            row.append(value)
        row_size = sum(_value_size(value) for value in row)
        if size + row_size > caps.max_bytes:
            return caps.result(names, rows, truncated=True, byte_capped=True, size=size, cuts=cuts)
        rows.append(row)
        size += row_size
    return caps.result(names, rows, truncated=False, byte_capped=False, size=size, cuts=cuts)


def _value_size(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, bytes | bytearray | memoryview):
        return len(value)
    if isinstance(value, str):
        return len(value.encode())
    return len(str(value))


def _is_cursor_query(statement: str) -> bool:
    return isinstance(parse_sql(statement)[0].stmt, ast.SelectStmt)


def _server_message(exc: psycopg.Error) -> str:
    diag = getattr(exc, "diag", None)
    primary = diag.message_primary if diag is not None else None
    return mask_dsn((primary or str(exc)).strip())
