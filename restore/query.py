"""Read-only queries against replica and backup targets: parser check, then a READ ONLY transaction.

Both checks apply and either one refuses: `restore.guard` classifies every statement, and the server runs them in a
READ ONLY transaction with a statement timeout, fetching at most `limit + 1` rows through a server-side cursor.
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


class QueryFailed(RewindError):
    """The server refused or failed a query (the message is the server's, with DSNs masked)."""


class QueryResult(BaseModel):
    """The last statement's result: at most `limit` rows; `truncated` when the query had more."""

    columns: list[str]
    rows: list[list[Any]]
    truncated: bool
    row_count: int
    seconds: float


def run_read_only(target: Target, sql_text: str, *, limit: int = 100, timeout_s: float = 10) -> QueryResult:
    """Run provably read-only SQL on a replica or backup target; raises QueryRefused, TargetError or QueryFailed."""
    require_role(target, *_QUERYABLE_ROLES)
    if limit < 1:
        raise QueryFailed("The row limit must be at least 1.")
    verdict = require_read_only(sql_text)
    return execute_in_read_only_transaction(target, verdict.statements, limit=limit, timeout_s=timeout_s)


def execute_in_read_only_transaction(
    target: Target, statements: list[str], *, limit: int, timeout_s: float
) -> QueryResult:
    """The server-side half of the check: a READ ONLY transaction that is always rolled back."""
    started = time.perf_counter()
    try:
        with psycopg.connect(target.dsn, connect_timeout=_CONNECT_TIMEOUT_S) as conn:
            conn.read_only = True
            try:
                _set_timeouts(conn, timeout_s)
                result = QueryResult(columns=[], rows=[], truncated=False, row_count=0, seconds=0.0)
                for statement in statements:
                    result = _run_statement(conn, statement, limit)
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


def _set_timeouts(conn: psycopg.Connection, timeout_s: float) -> None:
    millis = max(1, int(timeout_s * 1000))
    for setting in ("statement_timeout", "lock_timeout"):
        conn.execute(sql.SQL("SET LOCAL {} = {}").format(sql.Identifier(setting), sql.Literal(millis)))


def _run_statement(conn: psycopg.Connection, statement: str, limit: int) -> QueryResult:
    if _is_cursor_query(statement):
        # A server-side cursor so that a huge result is never transferred: only limit + 1 rows are fetched.
        with conn.cursor(name=_CURSOR_NAME) as cur:
            cur.execute(statement)
            return _fetch(cur, limit)
    with conn.cursor() as cur:  # EXPLAIN and SHOW: small results, and DECLARE CURSOR refuses them
        cur.execute(statement)
        return _fetch(cur, limit)


def _fetch(cur: psycopg.Cursor, limit: int) -> QueryResult:
    columns = [column.name for column in cur.description or ()]
    rows = [list(row) for row in cur.fetchmany(limit + 1)] if cur.description else []
    truncated = len(rows) > limit
    rows = rows[:limit]
    return QueryResult(columns=columns, rows=rows, truncated=truncated, row_count=len(rows), seconds=0.0)


def _is_cursor_query(statement: str) -> bool:
    return isinstance(parse_sql(statement)[0].stmt, ast.SelectStmt)


def _server_message(exc: psycopg.Error) -> str:
    diag = getattr(exc, "diag", None)
    primary = diag.message_primary if diag is not None else None
    return mask_dsn((primary or str(exc)).strip())
