"""The `/inc` verbs of restore work: queries, diffs, plans and proposals (DESIGN.md §3, issue 5).

`bot.commands` merges `PARSERS` and `HELP` into the grammar. `/inc plan` is shared with the run of show:
`plan <table> deleted …` is a restore plan, anything else a list of steps.
"""

from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from pydantic import BaseModel

from bot.errors import UsageError

Parser = Callable[[str, datetime, ZoneInfo, str], BaseModel]

PARSERS: dict[str, Parser] = {}
HELP: list[tuple[str, str]] = []


def is_restore_plan(rest: str) -> bool:
    words = rest.split()
    return len(words) >= 2 and words[1].lower() == "deleted" and ";" not in rest


def parse_restore_plan(rest: str, now: datetime, zone: ZoneInfo, slash: str) -> BaseModel:
    raise UsageError("Restore plans from Slack are not available yet; use `rewind plan` on the command line.")
