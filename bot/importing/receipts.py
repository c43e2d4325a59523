"""The bot's own confirmations in a channel's history, and the same shape for a command typed as text."""

import re
from collections.abc import Callable

from bot.grammar import commands as grammar
from bot.scribe.runofshow import mention

_CONFIRMATIONS: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], str | None]], ...] = (
    (re.compile(r"^:pushpin: Noted: `[^`]*` (?P<text>.*) — [^—]+$", re.S), lambda m: f"note|{m['text']}"),
    (re.compile(r"^:large_yellow_circle: Yellow flag \d+ raised: (?P<text>.*)$", re.S), lambda m: f"flag|{m['text']}"),
    (re.compile(r"^:large_yellow_circle: Yellow flag \d+ raised from this message\.$"), lambda m: None),
    (
        re.compile(r"^:white_circle: Yellow flag (?P<n>\d+) resolved: (?P<text>.*)$", re.S),
        lambda m: f"resolve|{m['n']}",
    ),
    (
        re.compile(r"^:memo: (?P<kind>Impact|Cause|Question) recorded: (?P<text>.*)$", re.S),
        lambda m: f"{m['kind'].lower()}|{m['text']}",
    ),
    (
        re.compile(r"^:bust_in_silhouette: (?P<label>Assigned|Action item) \d+ to (?P<owner>\S+): (?P<text>.*)$", re.S),
        lambda m: f"{'assign' if m['label'] == 'Assigned' else 'action'}|{m['owner']}|{m['text']}",
    ),
)


def confirmation(text: str) -> tuple[bool, str | None]:
    """(is one of the bot's confirmations, the signature of what it confirmed)."""
    for pattern, signature in _CONFIRMATIONS:
        match = pattern.match(text.strip())
        if match:
            return True, signature(match)
    return False, None


def command_signature(command: grammar.Command) -> str | None:
    if isinstance(command, grammar.Note):
        return f"note|{command.text}"
    if isinstance(command, grammar.FlagRaise):
        return f"flag|{command.text}"
    if isinstance(command, grammar.FlagResolve):
        return f"resolve|{command.number}"
    if isinstance(command, grammar.SectionText):
        return f"{command.name}|{command.text}"
    if isinstance(command, grammar.TaskCreate):
        return f"{command.name}|{mention(command.owner)}|{command.text}"
    return None
