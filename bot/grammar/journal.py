"""The `/inc` verbs of the change journal: `journal`, `journal log …` and `undo …`.

Times are typed as the scribe's are (`10:42`, `2026-01-22 10:42`, read in the display zone, stored in UTC); a
transaction id is typed as `journal log` lists it, or as the 64-bit value `pg_current_xact_id()` returned.
"""

import re
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel

from bot.errors import UsageError
from bot.grammar.restore import Parser, table_name
from bot.grammar.times import split_leading_time

_XID = re.compile(r"^\d{1,20}$")
_WINDOW_WORDS = ("since", "until", "table")


class JournalStatus(BaseModel):
    name: Literal["journal"] = "journal"


class JournalLog(BaseModel):
    name: Literal["journal log"] = "journal log"
    since: datetime | None = None
    until: datetime | None = None
    tables: list[str] = []


class Undo(BaseModel):
    """Undo of the transactions named by id, or of those that committed in a time window (optionally per table)."""

    name: Literal["undo"] = "undo"
    xids: list[int] = []
    since: datetime | None = None
    until: datetime | None = None
    tables: list[str] = []


def _journal(rest: str, now: datetime, zone: ZoneInfo, slash: str) -> JournalStatus | JournalLog:
    words = rest.split(None, 1)
    if not words:
        return JournalStatus()
    example = f"{slash} journal log since 10:42 until 11:20 table products"
    if words[0].lower() != "log":
        raise UsageError("Say `journal` for its status, or `journal log [since …] [until …] [table …]`.", example)
    since, until, tables = _window(words[1] if len(words) > 1 else "", now, zone, example)
    return JournalLog(since=since, until=until, tables=tables)


def _undo(rest: str, now: datetime, zone: ZoneInfo, slash: str) -> Undo:
    example = f"{slash} undo since 10:42 until 11:17 table products"
    words = rest.replace(",", " ").split()
    if not words:
        raise UsageError("Say which transactions: their ids from `journal log`, or `since … until …`.", example)
    if all(_XID.match(w) for w in words):
        return Undo(xids=[int(w) for w in words])
    if words[0].lower() != "since":
        raise UsageError("Give transaction ids (digits only), or a window that starts with `since`.", example)
    since, until, tables = _window(rest, now, zone, example)
    if until is None:
        raise UsageError("An undo by time needs both ends: `since … until …`.", example)
    return Undo(since=since, until=until, tables=tables)


def _window(text: str, now: datetime, zone: ZoneInfo, example: str) -> tuple[datetime | None, datetime | None, list]:
    since = until = None
    tables: list[str] = []
    rest = text.strip()
    while rest:
        word, _, rest = rest.partition(" ")
        word = word.lower()
        if word not in _WINDOW_WORDS:
            raise UsageError(f"I don't understand {word!r} here; use since, until and table.", example)
        if word == "table":
            name, _, rest = rest.strip().partition(" ")
            tables.append(table_name(name.rstrip(","), example))
            continue
        parsed, rest = split_leading_time(rest, now=now, zone=zone, strict=False)
        if parsed is None:
            raise UsageError(f"`{word}` needs a time such as 10:42 or 2026-01-22 10:42.", example)
        if word == "since":
            since = parsed.at
        else:
            until = parsed.at
    if since and until and until <= since:
        raise UsageError("`until` must come after `since`.", example)
    return since, until, tables


PARSERS: dict[str, Parser] = {"journal": _journal, "undo": _undo}
HELP: list[tuple[str, str]] = [
    ("journal", "the change journal: its lag, retained WAL and recent transactions"),
    ("journal log [since 10:42] [until 11:20] [table t]", "transactions, with per-table inserts, updates, deletes"),
    ("undo <xid…> · undo since 10:42 until 11:17 [table t]", "the inverse of those transactions, as a proposal"),
]
