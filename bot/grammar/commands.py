"""The `/inc` grammar: text in, a typed command (pydantic) out. No Slack here, so the shell, the history
importer and the tests parse exactly what the slash command parses.

Every parse error is a UsageError carrying a correct example.
"""

import re
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field

from bot.errors import UsageError
from bot.grammar import journal as journal_grammar
from bot.grammar import restore as restore_grammar
from bot.grammar.slacktext import unescape
from bot.grammar.times import TIME_EXAMPLE, ParsedTime, split_leading_time

_MENTION = re.compile(r"^<@(?P<id>[UW][A-Z0-9]+)(?:\|[^>]*)?>$|^@(?P<name>[\w.\-]+)$")


class Command(BaseModel):
    name: str


class Declare(Command):
    name: Literal["declare"] = "declare"
    title: str
    here: bool = False


class Note(Command):
    name: Literal["note"] = "note"
    text: str
    at: datetime | None = None
    approximate: bool = False


class FlagRaise(Command):
    name: Literal["flag"] = "flag"
    text: str
    at: datetime | None = None
    approximate: bool = False


class FlagResolve(Command):
    name: Literal["flag resolve"] = "flag resolve"
    number: int
    resolution: str


class Listing(Command):
    """Commands that only show: flags, actions, status, help, timeline."""

    name: Literal["flags", "actions", "status", "help", "timeline"]
    limit: Annotated[int, Field(ge=1, le=200)] = 10


class Plan(Command):
    name: Literal["plan"] = "plan"
    steps: list[str]


class StepUpdate(Command):
    name: Literal["step"] = "step"
    number: int
    action: Literal["start", "done", "owner"]
    owner: str | None = None


class TaskCreate(Command):
    name: Literal["assign", "action"]
    owner: str
    text: str


class StatusChange(Command):
    name: Literal["resolve", "close"]


class SectionText(Command):
    """Post-mortem prose: impact, cause and open questions."""

    name: Literal["impact", "cause", "question"]
    text: str


class Postmortem(Command):
    name: Literal["postmortem"] = "postmortem"
    canvas: bool = False
    update: bool = False


class ImportHistory(Command):
    name: Literal["import-history"] = "import-history"


AnyCommand = Command

_Parser = Callable[[str, datetime, ZoneInfo, str], AnyCommand]

HELP: list[tuple[str, str]] = [
    ("declare <title>", "open an incident channel (`--here` adopts this channel)"),
    ("note <text>", "add to the timeline; backdate with `at 10:42`, `~10:42` or `at 2026-01-22 10:42`"),
    ("flag <text>", "raise a yellow flag"),
    ("flag resolve <n> <resolution>", "close yellow flag n"),
    ("flags", "list yellow flags"),
    ("plan <step>; <step>; …", "set the run of show"),
    ("step <n> start|done|owner @user", "update step n"),
    ("assign @user <task>", "record who does what now"),
    ("action @owner <follow-up>", "record a post-incident action item"),
    ("actions", "list action items and assignments"),
    ("impact <text> / cause <text> / question <text>", "post-mortem sections"),
    ("postmortem [canvas [update]]", "write the post-mortem (Markdown and a picture, or the channel canvas)"),
    ("import-history", "rebuild the timeline from this channel's history (📌 and 🟡 reactions)"),
    ("status", "the incident at a glance"),
    ("timeline [n]", "the last n entries (default 10)"),
    ("resolve / close", "change the incident's status"),
    ("help", "this list"),
]


def parse_mention(token: str) -> str:
    """A user from `<@U123>` (Slack's escaped mention) or `@name` (typed in the shell)."""
    match = _MENTION.match(token)
    if not match:
        raise UsageError(f"{token!r} is not a user mention.", "assign @alice check the 4am backup")
    return match["id"] or f"@{match['name']}"


def parse_command(text: str, *, now: datetime, zone: ZoneInfo, slash: str = "/inc") -> AnyCommand:
    """Parse what follows the slash command."""
    words = text.strip().split(None, 1)
    if not words:
        return Listing(name="help")
    verb, rest = words[0].lower(), (words[1].strip() if len(words) > 1 else "")
    parser = _PARSERS.get(verb)
    if parser is None:
        raise UsageError(f"I don't know `{slash} {verb}`.", f"{slash} help")
    return parser(rest, now, zone, slash)


def _need(rest: str, what: str, example: str) -> str:
    if not rest:
        raise UsageError(f"Say {what}.", example)
    return rest


def _declare(rest: str, now: datetime, zone: ZoneInfo, slash: str) -> Declare:
    here = False
    tokens = rest.split()
    if "--here" in tokens:
        here = True
        rest = " ".join(t for t in tokens if t != "--here")
    title = _need(
        unescape(rest.strip()), "what the incident is", f"{slash} declare Prices deleted by the consolidation script"
    )
    return Declare(title=title, here=here)


def _timed_text(rest: str, now: datetime, zone: ZoneInfo, example: str) -> tuple[ParsedTime | None, str]:
    when, text = split_leading_time(rest, now=now, zone=zone)
    return when, _need(text, "what happened", example)


def _note(rest: str, now: datetime, zone: ZoneInfo, slash: str) -> Note:
    when, text = _timed_text(rest, now, zone, f"{slash} note {TIME_EXAMPLE.split(',')[0]} backup restore started")
    return Note(text=text, at=when.at if when else None, approximate=bool(when and when.approximate))


def _flag(rest: str, now: datetime, zone: ZoneInfo, slash: str) -> FlagRaise | FlagResolve:
    if rest.split(None, 1)[:1] == ["resolve"]:
        parts = rest.split(None, 2)
        example = f"{slash} flag resolve 2 payments after 4am are in the live table"
        if len(parts) < 2 or not parts[1].isdigit():
            raise UsageError("Say which flag to resolve, by its number (see `flags`).", example)
        return FlagResolve(number=int(parts[1]), resolution=_need(parts[2] if len(parts) > 2 else "", "how", example))
    when, text = _timed_text(rest, now, zone, f"{slash} flag the backup may lack yesterday's invoices")
    return FlagRaise(text=text, at=when.at if when else None, approximate=bool(when and when.approximate))


def _plan(rest: str, now: datetime, zone: ZoneInfo, slash: str) -> Command:
    if restore_grammar.is_restore_plan(rest):
        return restore_grammar.parse_restore_plan(rest, now, zone, slash)
    steps = [s.strip() for s in rest.split(";") if s.strip()]
    if not steps:
        raise UsageError("Give the steps, separated by `;`.", f"{slash} plan restore backup; diff prices; re-insert")
    return Plan(steps=steps)


def _step(rest: str, now: datetime, zone: ZoneInfo, slash: str) -> StepUpdate:
    parts = rest.split()
    example = f"{slash} step 2 start   ·   {slash} step 2 done   ·   {slash} step 2 owner @alice"
    if len(parts) < 2 or not parts[0].isdigit() or parts[1].lower() not in ("start", "done", "owner"):
        raise UsageError("Say the step number and start, done or owner @user.", example)
    action = parts[1].lower()
    if action == "owner":
        if len(parts) != 3:
            raise UsageError("Say who owns the step.", example)
        return StepUpdate(number=int(parts[0]), action="owner", owner=parse_mention(parts[2]))
    return StepUpdate(number=int(parts[0]), action=action)  # type: ignore[arg-type]


def _task(kind: Literal["assign", "action"]) -> _Parser:
    def parse(rest: str, now: datetime, zone: ZoneInfo, slash: str) -> TaskCreate:
        example = f"{slash} {kind} @alice " + ("check the 4am backup" if kind == "assign" else "add a prod guard")
        parts = rest.split(None, 1)
        if len(parts) < 2:
            raise UsageError("Say who and what.", example)
        return TaskCreate(name=kind, owner=parse_mention(parts[0]), text=parts[1].strip())

    return parse


def _listing(name: Literal["flags", "actions", "status", "help"]) -> _Parser:
    def parse(rest: str, now: datetime, zone: ZoneInfo, slash: str) -> Listing:
        return Listing(name=name)

    return parse


def _timeline(rest: str, now: datetime, zone: ZoneInfo, slash: str) -> Listing:
    if not rest:
        return Listing(name="timeline")
    if not rest.isdigit() or not 1 <= int(rest) <= 200:
        raise UsageError("Say how many entries, from 1 to 200.", f"{slash} timeline 20")
    return Listing(name="timeline", limit=int(rest))


def _status_change(name: Literal["resolve", "close"]) -> _Parser:
    def parse(rest: str, now: datetime, zone: ZoneInfo, slash: str) -> StatusChange:
        return StatusChange(name=name)

    return parse


def _section(name: Literal["impact", "cause", "question"]) -> _Parser:
    examples = {
        "impact": "19 products and 71 prices of one customer deleted",
        "cause": "the consolidation script ran against prod",
        "question": "did the 4am backup include late invoices?",
    }

    def parse(rest: str, now: datetime, zone: ZoneInfo, slash: str) -> SectionText:
        return SectionText(name=name, text=_need(rest, "the text", f"{slash} {name} {examples[name]}"))

    return parse


def _postmortem(rest: str, now: datetime, zone: ZoneInfo, slash: str) -> Postmortem:
    words = rest.lower().split()
    if words not in ([], ["canvas"], ["canvas", "update"]):
        raise UsageError("Say `postmortem`, `postmortem canvas` or `postmortem canvas update`.", f"{slash} postmortem")
    return Postmortem(canvas=bool(words), update=len(words) == 2)


def _import_history(rest: str, now: datetime, zone: ZoneInfo, slash: str) -> ImportHistory:
    if rest:
        raise UsageError("`import-history` takes no arguments: it reads this channel.", f"{slash} import-history")
    return ImportHistory()


_PARSERS: dict[str, _Parser] = {
    "declare": _declare,
    "note": _note,
    "flag": _flag,
    "flags": _listing("flags"),
    "plan": _plan,
    "step": _step,
    "assign": _task("assign"),
    "action": _task("action"),
    "actions": _listing("actions"),
    "status": _listing("status"),
    "help": _listing("help"),
    "timeline": _timeline,
    "resolve": _status_change("resolve"),
    "close": _status_change("close"),
    "impact": _section("impact"),
    "cause": _section("cause"),
    "question": _section("question"),
    "postmortem": _postmortem,
    "import-history": _import_history,
    **restore_grammar.PARSERS,
    **journal_grammar.PARSERS,
}
HELP += restore_grammar.HELP + journal_grammar.HELP
