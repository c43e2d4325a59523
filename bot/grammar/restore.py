"""The `/inc` verbs of restore work: queries, diffs, plans and proposals, replicas and backups.

`bot.grammar.commands` merges `PARSERS` and `HELP` into the grammar. `/inc plan` is shared with the run of show:
`plan <table> deleted …` is a restore plan, anything else a list of steps.

SQL typed in Slack arrives with `&`, `<` and `>` escaped and often wrapped in backticks; `slack_sql()` gives back the
text as typed, and that exact text is what a proposal's SHA-256 is computed over.
"""

import html
import re
from collections.abc import Callable
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel

from bot.errors import UsageError

Parser = Callable[[str, datetime, ZoneInfo, str], BaseModel]

_TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*(?:\.[A-Za-z_][A-Za-z0-9_$]*)?$")
_FENCE = re.compile(r"^```(?:sql)?\s*\n?(?P<body>.*?)\n?```$", re.S | re.I)
_DELETED_TAIL = re.compile(
    r"^(?:where\s+(?P<where>.+?))?\s*(?P<deps>with\s+dependents)?\s*(?:revert\s+(?P<revert>[\w.$,\s]+?))?\s*$",
    re.S | re.I,
)


class RestoreCommand(BaseModel):
    name: str


class Query(RestoreCommand):
    name: Literal["query"] = "query"
    target: str
    sql: str


class Targets(RestoreCommand):
    name: Literal["targets"] = "targets"


class ReplicaUp(RestoreCommand):
    """A replica from a configured backup, or (`source`) copied straight from a live replica or production target."""

    name: Literal["replica up"] = "replica up"
    backup: str | None = None
    source: str | None = None
    tables: list[str] = []


class BackupVerify(RestoreCommand):
    name: Literal["backup verify"] = "backup verify"
    backup: str


class Diff(RestoreCommand):
    name: Literal["diff"] = "diff"
    table: str
    where: str | None = None


class Deleted(RestoreCommand):
    """`deps`, `gap` and `plan` about the rows of `table` deleted since the backup (optionally `where`)."""

    name: Literal["deps", "gap", "restore plan"]
    table: str
    where: str | None = None
    with_dependents: bool = False
    revert: list[str] = []


class Propose(RestoreCommand):
    name: Literal["propose"] = "propose"
    target: str
    sql: str


def slack_sql(text: str) -> str:
    """SQL as the person typed it: Slack's &amp;/&lt;/&gt; undone, a ``` fence or `backticks` removed."""
    text = html.unescape(text.strip()) if "&" in text else text.strip()
    fenced = _FENCE.match(text)
    if fenced:
        return fenced["body"].strip()
    if len(text) > 1 and text.startswith("`") and text.endswith("`") and "`" not in text[1:-1]:
        return text[1:-1].strip()
    return text


def table_name(word: str, example: str) -> str:
    if not _TABLE.match(word):
        raise UsageError(f"{word!r} is not a table name (letters, digits, `_`, optionally `schema.table`).", example)
    return word


def _query(rest: str, now: datetime, zone: ZoneInfo, slash: str) -> Query:
    example = f"{slash} query replica SELECT count(*) FROM prices WHERE customer_id = 42"
    parts = rest.split(None, 1)
    if len(parts) < 2:
        raise UsageError("Say which target and the SQL (`/inc targets` lists the targets).", example)
    return Query(target=parts[0], sql=slack_sql(parts[1]))


def _targets(rest: str, now: datetime, zone: ZoneInfo, slash: str) -> Targets:
    if rest:
        raise UsageError("`targets` takes no arguments.", f"{slash} targets")
    return Targets()


def _replica(rest: str, now: datetime, zone: ZoneInfo, slash: str) -> ReplicaUp:
    example = f"{slash} replica up nightly prices products"
    words = rest.split()
    if len(words) < 2 or words[0].lower() != "up":
        raise UsageError("Say `replica up <backup>` and, optionally, the tables to restore.", example)
    if words[1].lower() == "from":
        example = f"{slash} replica up from prod-replica prices products"
        if len(words) < 3:
            raise UsageError("Say which target to copy from: `replica up from <target> [tables…]`.", example)
        return ReplicaUp(source=words[2], tables=[table_name(t.rstrip(","), example) for t in words[3:]])
    return ReplicaUp(backup=words[1], tables=[table_name(t.rstrip(","), example) for t in words[2:]])


def _backup(rest: str, now: datetime, zone: ZoneInfo, slash: str) -> BackupVerify:
    example = f"{slash} backup verify nightly"
    words = rest.split()
    if len(words) != 2 or words[0].lower() != "verify":
        raise UsageError("Say `backup verify <backup>`: a configured backup, checked against live.", example)
    return BackupVerify(backup=words[1])


def _diff(rest: str, now: datetime, zone: ZoneInfo, slash: str) -> Diff:
    example = f"{slash} diff prices where customer_id = 42"
    words = rest.split(None, 1)
    if not words:
        raise UsageError("Say which table to compare.", example)
    table, tail = table_name(words[0], example), (words[1].strip() if len(words) > 1 else "")
    if tail and not tail.lower().startswith("where "):
        raise UsageError("After the table, only `where <condition>` may follow.", example)
    return Diff(table=table, where=slack_sql(tail[6:]) or None if tail else None)


def _deleted(name: Literal["deps", "gap", "restore plan"], verb: str) -> Parser:
    def parse(rest: str, now: datetime, zone: ZoneInfo, slash: str) -> Deleted:
        extra = " [with dependents] [revert products.price,…]" if name == "restore plan" else ""
        example = f"{slash} {verb} prices deleted where customer_id = 42" + (" with dependents" if extra else "")
        words = rest.split(None, 2)
        if len(words) < 2 or words[1].lower() != "deleted":
            raise UsageError(f"Say `{verb} <table> deleted [where <condition>]{extra}`.", example)
        table = table_name(words[0], example)
        tail = _DELETED_TAIL.match(words[2] if len(words) > 2 else "")
        if tail is None:
            raise UsageError(f"Say `{verb} <table> deleted [where <condition>]{extra}`.", example)
        where = slack_sql(tail["where"]) if tail["where"] else None
        if name != "restore plan" and (tail["deps"] or tail["revert"]):
            raise UsageError(f"`with dependents` and `revert` belong to `{slash} plan`.", example)
        revert = [r.strip() for r in (tail["revert"] or "").replace(" ", ",").split(",") if r.strip()]
        return Deleted(name=name, table=table, where=where, with_dependents=bool(tail["deps"]), revert=revert)

    return parse


def _propose(rest: str, now: datetime, zone: ZoneInfo, slash: str) -> Propose:
    example = f"{slash} propose prod UPDATE prices SET amount = 1990 WHERE id = 7"
    parts = rest.split(None, 1)
    if len(parts) < 2 or not parts[1].strip():
        raise UsageError("Say the production target and the SQL to run there once approved.", example)
    return Propose(target=parts[0], sql=slack_sql(parts[1]))


PARSERS: dict[str, Parser] = {
    "query": _query,
    "targets": _targets,
    "replica": _replica,
    "backup": _backup,
    "diff": _diff,
    "deps": _deleted("deps", "deps"),
    "gap": _deleted("gap", "gap"),
    "propose": _propose,
}
HELP: list[tuple[str, str]] = [
    ("query <target> <SQL>", "read-only SQL on a replica or backup target (never production)"),
    ("targets", "the configured targets and their roles"),
    ("replica up <backup> [tables…]", "provision a replica from a configured backup"),
    ("replica up from <target> [tables…]", "a replica copied straight from a live replica (one consistent snapshot)"),
    ("backup verify <backup>", "is the backup any good? rows live has from before it that it lacks (yellow flags)"),
    ("diff <table> [where <condition>]", "backup vs live: rows deleted, added, changed"),
    ("deps <table> deleted [where …]", "the rows that depend on the deleted ones"),
    ("gap <table> deleted [where …]", "rows the backup cannot give back (each raises a yellow flag)"),
    ("plan <table> deleted [where …] [with dependents] [revert t.col,…]", "the restore script, as a proposal"),
    ("propose <target> <SQL>", "SQL to run once enough teammates approve it with ✅"),
]


def is_restore_plan(rest: str) -> bool:
    words = rest.split()
    return len(words) >= 2 and words[1].lower() == "deleted" and ";" not in rest


def parse_restore_plan(rest: str, now: datetime, zone: ZoneInfo, slash: str) -> BaseModel:
    return _deleted("restore plan", "plan")(rest, now, zone, slash)
