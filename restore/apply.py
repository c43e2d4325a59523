"""Runs a restore script against a target: a rolled-back dry run by default, or committed with `execute()`.

The script's own BEGIN/COMMIT are dropped; the runner owns the transaction. It sets statement_timeout and
lock_timeout (SET LOCAL) first, runs the statements one by one to report each one's row count, forces deferred
constraint checks, and records the transaction id before deciding, so an interrupted COMMIT can be checked later
with `check_xact()`. `execute(expected_counts=...)` rolls back unless the counts equal the dry run's.
"""

import re
import time
from collections.abc import Callable, Sequence
from typing import Literal

import pglast
import psycopg
from pydantic import BaseModel

from restore.errors import RewindError
from restore.snapshot import Side, as_target
from restore.targets import TargetRole, mask_dsn

XactStatus = Literal["committed", "aborted", "in progress"]

_LEADING_COMMENTS = re.compile(r"\A(?:\s+|--[^\n]*(?:\n|\Z)|/\*.*?\*/)*", re.S)
_TRANSACTION_CONTROL = {"BEGIN", "START", "COMMIT", "END", "ROLLBACK", "ABORT", "SAVEPOINT", "RELEASE", "PREPARE"}


class ApplyError(RewindError):
    """A script that failed, or whose row counts differ from its dry run; the transaction was rolled back."""


class StatementResult(BaseModel):
    index: int
    statement: str  # the statement's first line, for display
    rowcount: int


class ApplyResult(BaseModel):
    target: str
    statements: list[StatementResult]
    xid: int | None
    committed: bool
    dry_run: bool
    seconds: float

    @property
    def counts(self) -> list[int]:
        return [s.rowcount for s in self.statements]

    @property
    def rows_affected(self) -> int:
        return sum(self.counts)


def split_script(script: str) -> list[str]:
    """The script's statements without its own BEGIN/COMMIT. Other transaction control is refused: it would
    end the runner's transaction early and escape the dry run."""
    statements = [s for s in pglast.split(script, with_parser=False) if _body(s)]
    if statements and _first_word(statements[0]) in ("BEGIN", "START"):
        statements = statements[1:]
    if statements and _first_word(statements[-1]) in ("COMMIT", "END"):
        statements = statements[:-1]
    for number, statement in enumerate(statements, start=1):
        if _first_word(statement) in _TRANSACTION_CONTROL:
            raise ApplyError(
                f"Statement {number} ({_preview(statement)}) controls the transaction; the runner owns the "
                "transaction, so a script may only open with BEGIN and close with COMMIT."
            )
    return statements


def _body(statement: str) -> str:
    return _LEADING_COMMENTS.sub("", statement, count=1)


def _first_word(statement: str) -> str:
    words = _body(statement).split(None, 1)
    return words[0].rstrip(";").upper() if words else ""


def _preview(statement: str) -> str:
    first = _body(statement).splitlines()[0] if _body(statement) else ""
    return first[:120] + ("…" if len(first) > 120 else "")


def dry_run(target: Side, script: str, *, statement_timeout_s: float = 30, lock_timeout_s: float = 5) -> ApplyResult:
    """Runs the script in a transaction that is rolled back, and reports the row count of every statement."""
    return _run(target, script, commit=False, statement_timeout_s=statement_timeout_s, lock_timeout_s=lock_timeout_s)


def execute(
    target: Side,
    script: str,
    *,
    expected_counts: Sequence[int] | None = None,
    on_xid: Callable[[int], None] | None = None,
    statement_timeout_s: float = 30,
    lock_timeout_s: float = 5,
) -> ApplyResult:
    """Runs and commits the script. With `expected_counts` (a dry run's), any difference rolls back and raises.
    `on_xid` receives the transaction id before COMMIT, to record it where a crash can't lose it."""
    return _run(
        target,
        script,
        commit=True,
        expected_counts=expected_counts,
        on_xid=on_xid,
        statement_timeout_s=statement_timeout_s,
        lock_timeout_s=lock_timeout_s,
    )


def check_xact(target: Side, xid: int) -> XactStatus | None:
    """What became of a transaction `execute()` reported: committed, aborted, in progress; None if unknown
    (too old for the commit log to remember, or not a transaction of this server)."""
    with _connect(target, autocommit=True) as conn:
        try:
            row = conn.execute("SELECT pg_xact_status(%s::text::xid8)", (str(xid),)).fetchone()
        except psycopg.Error:
            return None
    status = row[0] if row else None
    return status if status in ("committed", "aborted", "in progress") else None


def _connect(side: Side, *, autocommit: bool = False) -> psycopg.Connection:
    target = as_target(side, TargetRole.PRODUCTION)
    try:
        return psycopg.connect(target.dsn, autocommit=autocommit)
    except psycopg.OperationalError as exc:
        raise ApplyError(f"Cannot connect to {target.name}: {mask_dsn(str(exc)).strip()}") from exc


def _run(
    side: Side,
    script: str,
    *,
    commit: bool,
    statement_timeout_s: float,
    lock_timeout_s: float,
    expected_counts: Sequence[int] | None = None,
    on_xid: Callable[[int], None] | None = None,
) -> ApplyResult:
    target = as_target(side, TargetRole.PRODUCTION)
    statements = split_script(script)
    started = time.monotonic()
    with _connect(target) as conn:
        try:
            results = _run_statements(conn, statements, statement_timeout_s, lock_timeout_s)
            xid = _finish_checks(conn, len(statements))
            result = ApplyResult(
                target=target.name, statements=results, xid=xid, committed=False, dry_run=not commit, seconds=0
            )
            if commit:
                _check_counts(result, expected_counts)
                if on_xid is not None:
                    on_xid(xid)
                conn.commit()
                result.committed = True
        finally:
            if not conn.closed and conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                conn.rollback()
    result.seconds = round(time.monotonic() - started, 3)
    return result


def _run_statements(
    conn: psycopg.Connection, statements: list[str], statement_timeout_s: float, lock_timeout_s: float
) -> list[StatementResult]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT set_config('statement_timeout', %s, true), set_config('lock_timeout', %s, true)",
            (f"{int(statement_timeout_s * 1000)}ms", f"{int(lock_timeout_s * 1000)}ms"),
        )
        results = []
        for index, statement in enumerate(statements, start=1):
            try:
                cur.execute(statement)  # no parameters: the text goes to the server as written, '%' included
            except psycopg.Error as exc:
                raise _failure(index, statement, exc) from exc
            results.append(StatementResult(index=index, statement=_preview(statement), rowcount=max(cur.rowcount, 0)))
    return results


def _finish_checks(conn: psycopg.Connection, count: int) -> int:
    """Runs deferred constraint checks now (a dry run never reaches COMMIT) and returns the transaction id."""
    try:
        conn.execute("SET CONSTRAINTS ALL IMMEDIATE")
    except psycopg.Error as exc:
        raise _failure(count + 1, "deferred constraint checks", exc) from exc
    row = conn.execute("SELECT pg_current_xact_id()::text::bigint").fetchone()
    assert row is not None
    return int(row[0])


def _failure(index: int, statement: str, exc: psycopg.Error) -> ApplyError:
    diag = exc.diag
    message = diag.message_primary or str(exc).strip()
    hint = f" Hint: {diag.message_hint}" if diag.message_hint else ""
    detail = f" ({diag.message_detail})" if diag.message_detail else ""
    return ApplyError(
        f"Statement {index} failed ({_preview(statement)}): {mask_dsn(message)}{detail}.{hint} "
        "The transaction was rolled back; nothing was changed."
    )


def _check_counts(result: ApplyResult, expected: Sequence[int] | None) -> None:
    if expected is None or list(expected) == result.counts:
        return
    differing = [
        f"statement {i}: dry run {e}, now {a}"
        for i, (e, a) in enumerate(zip(expected, result.counts, strict=False), start=1)
        if e != a
    ]
    if len(expected) != len(result.counts):
        differing.append(f"{len(expected)} statements in the dry run, {len(result.counts)} now")
    raise ApplyError(
        "Row counts differ from the dry run, so the transaction was rolled back and nothing was changed: "
        + "; ".join(differing)
        + ". Live changed since the dry run; make a new plan and dry-run it again."
    )
