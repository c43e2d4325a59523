"""Times people type: `at 10:42`, `~10:42` (approximate), `at 2026-01-22 10:42`.

Typed times are read in the display time zone (what the people in the channel see) and stored in UTC.
A bare time later than now by more than a few minutes means yesterday: at 00:30 "at 23:50" is last night.
"""

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from bot.errors import UsageError

_LEADING_TIME = re.compile(
    r"^\s*(?:(?P<at>at)\s+)?(?P<approx>~)?\s*(?:(?P<date>\d{4}-\d{2}-\d{2})[ T])?"
    r"(?P<hour>\d{1,2}):(?P<minute>\d{2})(?::(?P<second>\d{2}))?(?=\s|$)\s*",
    re.IGNORECASE,
)
_LOOKS_LIKE_TIME = re.compile(r"^\s*(?:at\s+)?~?\s*(?:\d{4}-\d{1,2}-\d{1,2}[ T])?\d{1,2}:\d", re.IGNORECASE)
FUTURE_TOLERANCE = timedelta(minutes=5)
TIME_EXAMPLE = "at 10:42, ~10:42 (approximate) or at 2026-01-22 10:42"


@dataclass(frozen=True)
class ParsedTime:
    at: datetime  # aware, UTC
    approximate: bool


def split_leading_time(
    text: str, *, now: datetime, zone: ZoneInfo, day: date | None = None, strict: bool = True
) -> tuple[ParsedTime | None, str]:
    """A time at the start of `text` and the rest of the text.

    `day` anchors a bare time on a given day (a message's own day) instead of "today or yesterday".
    With `strict`, text that starts like a time but is not a valid one raises a UsageError.
    """
    match = _LEADING_TIME.match(text)
    if not match:
        if strict and text.lstrip().lower().startswith(("at ", "~")) and _LOOKS_LIKE_TIME.match(text):
            raise UsageError(f"I couldn't read the time in {text.split()[0:3]!r}.", f"note {TIME_EXAMPLE} <text>")
        return None, text.strip()
    if not match["at"] and not match["approx"] and day is None and strict:
        # `/inc note 10:42 …` without "at": treat as text, the user may mean a version or a score.
        return None, text.strip()
    local = _local_datetime(match, now=now, zone=zone, day=day)
    return ParsedTime(local.astimezone(UTC), bool(match["approx"])), text[match.end() :].strip()


def _local_datetime(match: re.Match[str], *, now: datetime, zone: ZoneInfo, day: date | None) -> datetime:
    hour, minute, second = int(match["hour"]), int(match["minute"]), int(match["second"] or 0)
    try:
        clock = time(hour, minute, second)
        if match["date"]:
            return datetime.combine(date.fromisoformat(match["date"]), clock, tzinfo=zone)
    except ValueError as exc:
        raise UsageError(f"{match.group(0).strip()!r} is not a valid time.", f"note {TIME_EXAMPLE} <text>") from exc
    local_now = now.astimezone(zone)
    anchored = datetime.combine(day or local_now.date(), clock, tzinfo=zone)
    if day is None and anchored - local_now > FUTURE_TOLERANCE:
        anchored -= timedelta(days=1)
    return anchored


def slack_ts_to_datetime(ts: str) -> datetime:
    return datetime.fromtimestamp(float(ts), tz=UTC)


def format_time(when: datetime, zone: ZoneInfo, approximate: bool = False) -> str:
    """`2026-01-22 10:42 UTC`, with `~` when approximate, in the display zone."""
    local = when.astimezone(zone)
    return f"{'~' if approximate else ''}{local:%Y-%m-%d %H:%M} {local.tzname()}"
