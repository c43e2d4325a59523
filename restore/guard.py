"""Classify SQL as provably read-only with the PostgreSQL parser (libpg_query via pglast).

This is the first of two checks: `restore.query` also runs whatever passes here in a READ ONLY transaction, so a
user-defined function that writes (which no parser can see into) is still refused by the server.
"""

from collections.abc import Iterator

from pglast import ast, parse_sql
from pglast.parser import ParseError
from pydantic import BaseModel

from restore.errors import RewindError

ALLOWED_HELP = (
    "Allowed: SELECT, VALUES and TABLE without INTO or FOR UPDATE/SHARE and without data-modifying CTEs; "
    "EXPLAIN without ANALYZE of such a query; SHOW."
)

# Functions with side effects a READ ONLY transaction does not stop (signals, locks, settings, files, WAL,
# notifications), or that run SQL text the parser never sees.
DENIED_FUNCTIONS = frozenset(
    {
        "pg_terminate_backend",
        "pg_cancel_backend",
        "nextval",
        "setval",
        "set_config",
        "pg_reload_conf",
        "pg_rotate_logfile",
        "pg_switch_wal",
        "pg_switch_xlog",
        "pg_promote",
        "pg_backup_start",
        "pg_backup_stop",
        "pg_start_backup",
        "pg_stop_backup",
        "pg_read_file",
        "pg_read_binary_file",
        "pg_ls_dir",
        "pg_stat_file",
        "pg_file_write",
        "pg_file_unlink",
        "pg_file_rename",
        "pg_notify",
        "txid_current",
        "txid_current_if_assigned",
        "pg_current_xact_id",
        "pg_current_xact_id_if_assigned",
        "pg_logical_emit_message",
        "pg_import_system_collations",
        "pg_export_snapshot",
        "pg_log_backend_memory_contexts",
        "pg_replication_slot_advance",
        "pg_logical_slot_get_changes",
        "pg_logical_slot_get_binary_changes",
        "query_to_xml",
        "query_to_xmlschema",
        "query_to_xml_and_xmlschema",
        "cursor_to_xml",
        "cursor_to_xmlschema",
    }
)
DENIED_PREFIXES = (
    "lo_",
    "dblink",
    "pg_advisory_",
    "pg_try_advisory_",
    "pg_sleep",
    "pg_stat_reset",
    "pg_create_",
    "pg_drop_",
    "pg_replication_origin_",
    "pg_wal_replay_",
    "pg_ls_",
)
_WRITE_NODES = (ast.InsertStmt, ast.UpdateStmt, ast.DeleteStmt, ast.MergeStmt)


class GuardVerdict(BaseModel):
    """Whether SQL text may run as a read-only query; `statements` are the texts of its statements."""

    allowed: bool
    reason: str
    statements: list[str]


class QueryRefused(RewindError):
    """SQL that is not provably read-only."""


def is_denied_function(name: str) -> bool:
    name = name.lower()
    return name in DENIED_FUNCTIONS or name.startswith(DENIED_PREFIXES)


def classify(sql_text: str) -> GuardVerdict:
    """Parse `sql_text` and allow it only if every statement is provably read-only."""
    try:
        raw_statements = parse_sql(sql_text)
    except ParseError as exc:
        return GuardVerdict(allowed=False, reason=f"SQL does not parse: {exc.args[0]}", statements=[])
    texts = [_statement_text(sql_text, raw) for raw in raw_statements]
    if not raw_statements:
        return GuardVerdict(allowed=False, reason="no SQL statement given", statements=[])
    for number, raw in enumerate(raw_statements, start=1):
        problem = _problem_with(raw.stmt)
        if problem:
            where = f"statement {number}: " if len(raw_statements) > 1 else ""
            return GuardVerdict(allowed=False, reason=f"{where}{problem}", statements=texts)
    return GuardVerdict(allowed=True, reason="read-only", statements=texts)


def require_read_only(sql_text: str) -> GuardVerdict:
    """The verdict if allowed; else QueryRefused saying why and what is allowed."""
    verdict = classify(sql_text)
    if not verdict.allowed:
        raise QueryRefused(f"Refused: {verdict.reason}. {ALLOWED_HELP}")
    return verdict


def _statement_text(sql_text: str, raw: ast.RawStmt) -> str:
    # pglast reports character offsets; a length of 0 means "to the end of the text".
    start = raw.stmt_location or 0
    end = start + raw.stmt_len if raw.stmt_len else len(sql_text)
    return sql_text[start:end].strip()


def _problem_with(stmt: ast.Node) -> str | None:
    if isinstance(stmt, ast.VariableShowStmt):
        return None
    if isinstance(stmt, ast.ExplainStmt):
        return _problem_with_explain(stmt)
    if isinstance(stmt, ast.SelectStmt):
        return _problem_in_tree(stmt)
    return f"{_kind(stmt)} is not a read-only statement"


def _problem_with_explain(stmt: ast.ExplainStmt) -> str | None:
    for option in stmt.options or ():
        if option.defname.lower() == "analyze":
            return "EXPLAIN ANALYZE executes its statement"
    if not isinstance(stmt.query, ast.SelectStmt):
        return f"EXPLAIN of {_kind(stmt.query)} is not a read-only statement"
    return _problem_in_tree(stmt.query)


def _problem_in_tree(root: ast.Node) -> str | None:
    for node in walk_nodes(root):
        if isinstance(node, _WRITE_NODES):
            return f"{_kind(node)} inside a query (a data-modifying CTE?) writes"
        if isinstance(node, ast.SelectStmt) and node.intoClause is not None:
            return "SELECT INTO creates a table"
        if isinstance(node, ast.SelectStmt) and node.lockingClause:
            return "FOR UPDATE/SHARE takes row locks"
        if isinstance(node, ast.FuncCall):
            name = _function_name(node)
            if is_denied_function(name):
                return f"function {name}() has side effects"
    return None


def walk_nodes(root: object) -> Iterator[ast.Node]:
    """Every pglast node under `root`, depth first, without recursion (deep expressions stay safe)."""
    stack: list[object] = [root]
    while stack:
        item = stack.pop()
        if isinstance(item, tuple | list):
            stack.extend(item)
        elif isinstance(item, ast.Node):
            yield item
            stack.extend(getattr(item, slot, None) for slot in item.__slots__)


def _function_name(call: ast.FuncCall) -> str:
    # Schema-qualified calls (pg_catalog.nextval) are judged by their last name part.
    parts = [part.sval for part in call.funcname if isinstance(part, ast.String)]
    return parts[-1].lower() if parts else ""


def _kind(stmt: ast.Node | None) -> str:
    names = {
        "VariableSetStmt": "SET/RESET",
        "DoStmt": "DO",
        "CallStmt": "CALL",
        "LockStmt": "LOCK",
        "NotifyStmt": "NOTIFY",
        "ListenStmt": "LISTEN",
        "PrepareStmt": "PREPARE",
        "ExecuteStmt": "EXECUTE",
        "CopyStmt": "COPY",
        "DiscardStmt": "DISCARD",
        "InsertStmt": "INSERT",
        "UpdateStmt": "UPDATE",
        "DeleteStmt": "DELETE",
        "MergeStmt": "MERGE",
        "TransactionStmt": "a transaction command",
        "CreateTableAsStmt": "CREATE TABLE AS",
    }
    name = type(stmt).__name__
    return names.get(name, name.removesuffix("Stmt") or name)
