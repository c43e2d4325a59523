"""History import: the scribe's rules applied to a channel's past messages (a Slack export or the live history).

Slack-free: callers hand over plain pydantic models of Slack messages (`SlackMessage`), the channel (`ChannelInfo`)
and a way to name users. The rules are the live bot's:
- 📌 on a message makes a note with the message's own time (a leading `10:42`/`~10:42` dates it) and author;
  🟡 raises a yellow flag. The reactor is the first user in the reaction's `users`.
- `/inc …` typed as text is a command the bot never saw (Slack does not post a slash command it delivers), so it is
  parsed with the /inc grammar and applied at the message's time. If the history also holds the bot's confirmation of
  the same command, the bot did see it and the store already holds it: it is not applied again.
- The bot's own messages (its confirmations, headers, progress) never become entries.

Importing twice changes nothing: every entry made from a message carries a dedupe key derived from the message's
channel and ts (`entries.dedupe_key`), so a second import finds it and counts it as already present.
"""

import io
import json
import re
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from bot.config import Settings
from bot.errors import RewindError, UsageError
from bot.grammar import commands as grammar
from bot.grammar.times import slack_ts_to_datetime, split_leading_time
from bot.scribe.incidents import IncidentService, require_incident
from bot.scribe.names import name_from_profile
from bot.scribe.runofshow import mention
from bot.scribe.timeline import MessageRef, TimelineService, dedupe_key
from bot.store.models import Entry, EntryKind, EntrySource, Flag, FlagStatus, Task, TaskKind
from bot.store.session import Store
from bot.store.types import utcnow

Clock = Callable[[], datetime]
M = TypeVar("M", bound="_Model")
NameOf = Callable[[str], str]

_TS = re.compile(r"^\d{1,12}(?:\.\d{1,6})?$")
# Messages that say something. Joins, topic changes, deletions and the like are not part of the story.
CONTENT_SUBTYPES = frozenset({None, "thread_broadcast", "file_share", "me_message", "bot_message"})


class MalformedExportError(RewindError):
    """A Slack export that cannot be read; the message names the file and what is wrong with it."""


# --- the wire shapes (an export's JSON and the Web API's messages are the same objects) ------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Reaction(_Model):
    name: str
    users: list[str] = Field(default_factory=list)


class FileRef(_Model):
    name: str | None = None
    title: str | None = None


class BotProfile(_Model):
    name: str | None = None


class SlackMessage(_Model):
    ts: str
    type: str = "message"
    subtype: str | None = None
    user: str | None = None
    bot_id: str | None = None
    username: str | None = None
    bot_profile: BotProfile | None = None
    text: str = ""
    thread_ts: str | None = None
    reactions: list[Reaction] = Field(default_factory=list)
    files: list[FileRef] = Field(default_factory=list)

    @field_validator("ts")
    @classmethod
    def _ts(cls, value: str) -> str:
        if not _TS.match(value):
            raise ValueError(f"{value!r} is not a Slack timestamp like 1769078520.000100")
        return value

    @property
    def key(self) -> tuple[int, int]:
        seconds, _, micros = self.ts.partition(".")
        return int(seconds), int(micros.ljust(6, "0"))

    @property
    def posted(self) -> datetime:
        return slack_ts_to_datetime(self.ts)

    @property
    def is_bot(self) -> bool:
        return bool(self.bot_id) or self.subtype == "bot_message"

    @property
    def author_id(self) -> str:
        return self.user or self.bot_id or "unknown"

    def reactors(self, emoji: str) -> list[str]:
        return next((r.users for r in self.reactions if r.name == emoji), [])

    def full_text(self) -> str:
        """The current text (exports and the API both carry the edited text), with attached files named."""
        names = [f.name or f.title or "file" for f in self.files]
        if not names:
            return self.text
        label = ("File: " if len(names) == 1 else "Files: ") + ", ".join(names)
        return f"{self.text} ({label[0].lower()}{label[1:]})" if self.text.strip() else label


class TextValue(_Model):
    value: str = ""


class ChannelInfo(_Model):
    id: str
    name: str
    created: int = 0
    creator: str | None = None
    topic: TextValue | None = None
    purpose: TextValue | None = None

    @property
    def title(self) -> str:
        for text in (self.purpose, self.topic):
            if text is not None and text.value.strip():
                return text.value.strip()
        return self.name


class SlackUser(_Model):
    id: str
    name: str | None = None
    real_name: str | None = None
    profile: dict[str, Any] = Field(default_factory=dict)

    @property
    def display(self) -> str:
        return name_from_profile(self.model_dump()) or self.id


@dataclass(frozen=True)
class ChannelHistory:
    """Everything an import needs, read and validated before anything is written."""

    channel: ChannelInfo
    messages: list[SlackMessage]
    names: dict[str, str]

    def name_of(self, user_id: str) -> str:
        return self.names.get(user_id, user_id)


@dataclass
class ImportResult:
    messages: int = 0
    notes: int = 0
    flags: int = 0
    other: int = 0  # impact, cause, question, flag resolutions, assignments and action items typed as text
    already_present: int = 0
    bot_messages: int = 0
    declared: bool = False
    skipped: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.notes or self.flags or self.other or self.declared)

    def summary(self) -> str:
        parts = [f"{self.notes} notes", f"{self.flags} flags"]
        if self.other:
            parts.append(f"{self.other} other entries")
        text = f"{', '.join(parts)} imported, {self.already_present} already present ({self.messages} messages read)."
        if self.declared:
            text = "Declared this channel an incident. " + text
        if self.skipped:
            text += "\nNot imported: " + "; ".join(self.skipped)
        return text

    def as_dict(self) -> dict[str, Any]:
        return {
            "messages": self.messages,
            "notes": self.notes,
            "flags": self.flags,
            "other": self.other,
            "already_present": self.already_present,
            "bot_messages": self.bot_messages,
            "declared": self.declared,
            "skipped": self.skipped,
        }


# --- the bot's confirmations, and the same shape for a typed command --------------------------------------------

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


# --- the importer ------------------------------------------------------------------------------------------------


class HistoryImporter:
    """Applies the scribe's rules to a channel's messages. Safe to run again: nothing already imported is redone."""

    def __init__(self, store: Store, settings: Settings, clock: Clock = utcnow) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock
        self.timeline = TimelineService(store, clock)

    def import_history(
        self,
        channel: ChannelInfo,
        messages: Iterable[SlackMessage],
        name_of: NameOf,
        *,
        bot_user_id: str | None = None,
        bot_id: str | None = None,
    ) -> ImportResult:
        ordered = _chronological(messages)
        result = ImportResult(messages=len(ordered))
        ours = [m for m in ordered if self._is_ours(m, bot_user_id, bot_id)]
        confirmed = {sig for m in ours if (sig := confirmation(m.text)[1])}
        result.bot_messages = len(ours)
        ours_ts = {m.ts for m in ours}
        result.declared = self._ensure_incident(channel, ordered, name_of)
        for message in ordered:
            if message.ts not in ours_ts:
                self._import_message(channel.id, message, name_of, confirmed, result)
        return result

    # --- rules

    def _is_ours(self, message: SlackMessage, bot_user_id: str | None, bot_id: str | None) -> bool:
        if bot_user_id and message.user == bot_user_id:
            return True
        if bot_id and message.bot_id == bot_id:
            return True
        return message.is_bot and confirmation(message.text)[0]

    def _ensure_incident(self, channel: ChannelInfo, ordered: Sequence[SlackMessage], name_of: NameOf) -> bool:
        incidents = IncidentService(self.store, self.clock)
        if incidents.find(channel.id) is not None:
            return False
        first = ordered[0].posted if ordered else datetime.fromtimestamp(channel.created, tz=UTC)
        creator = channel.creator or (ordered[0].author_id if ordered else "unknown")
        try:
            IncidentService(self.store, lambda: first).declare(
                title=channel.title,
                user_id=creator,
                channel_id=channel.id,
                channel_name=channel.name,
                author_name=name_of(creator),
            )
        except (UsageError, IntegrityError):
            return False  # another import (or a /inc declare) made it an incident a moment ago
        return True

    def _import_message(
        self, channel_id: str, message: SlackMessage, name_of: NameOf, confirmed: set[str], result: ImportResult
    ) -> None:
        author_name = name_of(message.author_id) if message.user else _bot_name(message)
        text, typed = message.full_text(), message.text.lstrip()
        slash = self.settings.slash_command
        recorded: set[EntryKind] = set()
        if typed.startswith(slash) and typed[len(slash) : len(slash) + 1] in ("", " ", "\n"):
            command_text = typed[len(slash) :].strip()
            recorded = self._typed_command(channel_id, message, command_text, author_name, confirmed, result)
        for emoji, kind in ((self.settings.emoji_note, EntryKind.NOTE), (self.settings.emoji_flag, EntryKind.FLAG)):
            reactors = message.reactors(emoji)
            if reactors and kind not in recorded:
                ref = self._reacted_ref(channel_id, message, text, author_name)
                self._record(ref, kind, reactors[0], result)

    def _reacted_ref(self, channel_id: str, message: SlackMessage, text: str, author_name: str) -> MessageRef:
        """As the live 📌 does: a leading `10:42`/`~10:42`/`at 10:42` dates the message on its own day."""
        zone, posted = self.settings.zone, message.posted
        when, rest = split_leading_time(text, now=posted, zone=zone, day=posted.astimezone(zone).date(), strict=False)
        return MessageRef(
            channel_id=channel_id,
            ts=message.ts,
            author_id=message.author_id,
            text=rest or text,
            occurred_at=when.at if when else posted,
            approximate=bool(when and when.approximate),
            author_name=author_name,
        )

    def _record(self, ref: MessageRef, kind: EntryKind, reactor: str, result: ImportResult) -> None:
        recorded = self.timeline.record_message(ref, kind, reactor, source=EntrySource.IMPORT)
        if not recorded.created:
            result.already_present += 1
        elif kind == EntryKind.FLAG:
            result.flags += 1
        else:
            result.notes += 1

    def _typed_command(
        self,
        channel_id: str,
        message: SlackMessage,
        command_text: str,
        author_name: str,
        confirmed: set[str],
        result: ImportResult,
    ) -> set[EntryKind]:
        """Apply `/inc …` typed as a message; returns the message kinds (note, flag) it put on the timeline."""
        slash, posted = self.settings.slash_command, message.posted
        try:
            command = grammar.parse_command(command_text, now=posted, zone=self.settings.zone, slash=slash)
        except UsageError as exc:
            result.skipped.append(f"`{slash} {command_text[:60]}` at {_hhmm(posted)}: {exc}")
            return set()
        signature = command_signature(command)
        if signature is not None and signature in confirmed:
            result.already_present += 1  # the bot was running and confirmed it: the store has it
            return set()
        author = message.author_id
        if isinstance(command, grammar.Note | grammar.FlagRaise):
            kind = EntryKind.NOTE if isinstance(command, grammar.Note) else EntryKind.FLAG
            ref = MessageRef(
                channel_id=channel_id,
                ts=message.ts,
                author_id=author,
                text=command.text,
                occurred_at=command.at or posted,
                approximate=command.approximate,
                author_name=author_name,
            )
            self._record(ref, kind, author, result)
            return {kind}
        if isinstance(command, grammar.SectionText | grammar.FlagResolve | grammar.TaskCreate):
            try:
                created = self._command_entry(channel_id, message, command, author_name)
            except RewindError as exc:
                result.skipped.append(f"`{slash} {command_text[:60]}` at {_hhmm(posted)}: {exc}")
                return set()
            if created:
                result.other += 1
            else:
                result.already_present += 1
            return set()
        if not isinstance(command, grammar.Listing | grammar.Postmortem | grammar.ImportHistory):
            result.skipped.append(f"`{slash} {command.name}` at {_hhmm(posted)} (run it again if it still applies)")
        return set()

    def _command_entry(
        self,
        channel_id: str,
        message: SlackMessage,
        command: grammar.SectionText | grammar.FlagResolve | grammar.TaskCreate,
        author_name: str,
    ) -> bool:
        """Impact/cause/question, a flag resolution or a task typed as text, once per message. True if created."""
        key_kind = {grammar.FlagResolve: "resolve"}.get(type(command), command.name)
        key = dedupe_key(key_kind, channel_id, message.ts)
        posted, author, now = message.posted, message.author_id, self.clock()
        try:
            with self.store.transaction() as session:
                incident = require_incident(session, channel_id, lock=True)
                if session.scalar(select(Entry.id).where(Entry.incident_id == incident.id, Entry.dedupe_key == key)):
                    return False
                data: dict[str, Any] | None = None
                if isinstance(command, grammar.SectionText):
                    kind, text = EntryKind(command.name), command.text
                elif isinstance(command, grammar.FlagResolve):
                    flag = session.scalars(
                        select(Flag).where(Flag.incident_id == incident.id, Flag.number == command.number)
                    ).one_or_none()
                    if flag is None:
                        raise UsageError(f"there is no yellow flag {command.number}")
                    if flag.status == FlagStatus.RESOLVED:
                        raise UsageError(f"yellow flag {command.number} is already resolved")
                    flag.status, flag.resolution = FlagStatus.RESOLVED, command.resolution
                    flag.resolved_by, flag.resolved_at = author, posted
                    kind, text = EntryKind.NOTE, f"Yellow flag {command.number} resolved: {command.resolution}"
                    data = {"resolves_flag": command.number}
                else:
                    task_kind = TaskKind.ASSIGNMENT if command.name == "assign" else TaskKind.ACTION
                    number = session.scalar(
                        select(func.max(Task.number)).where(Task.incident_id == incident.id, Task.kind == task_kind)
                    )
                    session.add(
                        Task(
                            incident_id=incident.id,
                            kind=task_kind,
                            number=(number or 0) + 1,
                            owner_id=command.owner,
                            text=command.text,
                            created_by=author,
                            created_at=posted,
                        )
                    )
                    label = "Assigned" if task_kind == TaskKind.ASSIGNMENT else "Action item"
                    kind = EntryKind.ASSIGNMENT if task_kind == TaskKind.ASSIGNMENT else EntryKind.ACTION
                    text = f"{label} to {mention(command.owner)}: {command.text}"
                session.add(
                    Entry(
                        incident_id=incident.id,
                        kind=kind,
                        text=text,
                        author_id=author,
                        author_name=author_name,
                        occurred_at=posted,
                        recorded_at=now,
                        source=EntrySource.IMPORT,
                        source_channel=channel_id,
                        source_ts=message.ts,
                        dedupe_key=key,
                        data=data,
                    )
                )
                return True
        except IntegrityError:
            return False  # another import of the same history got there first


def _chronological(messages: Iterable[SlackMessage]) -> list[SlackMessage]:
    """Oldest first, each message once (a thread broadcast shows in the channel and in its thread)."""
    unique: dict[str, SlackMessage] = {}
    for message in messages:
        if message.type == "message" and message.subtype in CONTENT_SUBTYPES:
            unique.setdefault(message.ts, message)
    return sorted(unique.values(), key=lambda m: m.key)


def _bot_name(message: SlackMessage) -> str:
    profile = message.bot_profile.name if message.bot_profile else None
    return message.username or profile or message.author_id


def _hhmm(when: datetime) -> str:
    return f"{when:%Y-%m-%d %H:%M} UTC"


# --- a Slack workspace export ----------------------------------------------------------------------------------


def read_slack_export(path: Path, channel: str) -> ChannelHistory:
    """Read and validate one channel of a standard Slack export (a zip). Nothing is written here."""
    try:
        archive = zipfile.ZipFile(path)
    except FileNotFoundError as exc:
        raise MalformedExportError(f"{path}: no such file. Give the path of the export's .zip.") from exc
    except (zipfile.BadZipFile, OSError) as exc:
        raise MalformedExportError(f"{path}: not a zip file ({exc}). Give Slack's export .zip as downloaded.") from exc
    with archive:
        return _read_archive(path, archive, channel.lstrip("#"))


def _read_archive(path: Path, archive: zipfile.ZipFile, wanted: str) -> ChannelHistory:
    names = set(archive.namelist())
    root = _export_root(path, names)
    channels: list[ChannelInfo] = []
    for listing in ("channels.json", "groups.json"):
        if root + listing in names:
            channels += _load_list(path, archive, root + listing, ChannelInfo)
    channel = next((c for c in channels if wanted in (c.name, c.id)), None)
    if channel is None:
        known = ", ".join(sorted(c.name for c in channels)) or "none"
        raise MalformedExportError(
            f"{path}: no channel {wanted!r} in channels.json or groups.json (channels in this export: {known})."
        )
    users: list[SlackUser] = []
    if root + "users.json" in names:
        users = _load_list(path, archive, root + "users.json", SlackUser)
    folder = f"{root}{channel.name}/"
    days = sorted(n for n in names if n.startswith(folder) and n.endswith(".json") and "/" not in n[len(folder) :])
    if not days and not any(n.startswith(folder) for n in names):
        raise MalformedExportError(
            f"{path}: channel {channel.name!r} is listed but its folder {channel.name}/ is missing from the export."
        )
    messages: list[SlackMessage] = []
    for day in days:  # daily files sort by date; messages are ordered by ts afterwards, across midnight
        messages += _load_list(path, archive, day, SlackMessage, skip_non_messages=True)
    return ChannelHistory(channel, messages, {u.id: u.display for u in users})


def _export_root(path: Path, names: set[str]) -> str:
    """Exports have their JSON at the top; tolerate one enclosing folder (a re-zipped export)."""
    for listing in ("channels.json", "groups.json"):
        for name in sorted(names, key=len):
            if PurePosixPath(name).name == listing and name.count("/") <= 1:
                return name[: -len(listing)]
    raise MalformedExportError(
        f"{path}: neither channels.json nor groups.json is in the zip. Is this a Slack workspace export?"
    )


def _load_list(
    path: Path, archive: zipfile.ZipFile, name: str, model: type[M], *, skip_non_messages: bool = False
) -> list[M]:
    try:
        with archive.open(name) as handle:
            raw = json.load(io.TextIOWrapper(handle, encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise MalformedExportError(f"{path}: {name} is not valid JSON: {exc.msg} at line {exc.lineno}.") from exc
    except (UnicodeDecodeError, zipfile.BadZipFile, OSError) as exc:
        raise MalformedExportError(f"{path}: {name} cannot be read: {exc}.") from exc
    if not isinstance(raw, list):
        raise MalformedExportError(f"{path}: {name} should hold a JSON list, not {type(raw).__name__}.")
    items: list[M] = []
    for index, item in enumerate(raw):
        if skip_non_messages and isinstance(item, dict) and item.get("type", "message") != "message":
            continue
        try:
            items.append(model.model_validate(item))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "item"
            raise MalformedExportError(f"{path}: {name}, item {index + 1}: {where}: {first['msg']}.") from exc
    return items


__all__ = [
    "ChannelHistory",
    "ChannelInfo",
    "HistoryImporter",
    "ImportResult",
    "MalformedExportError",
    "SlackMessage",
    "read_slack_export",
]
