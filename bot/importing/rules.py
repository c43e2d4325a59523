"""History import: the scribe's rules applied to a channel's past messages (a Slack export or the live history).

Slack-free: callers hand over plain pydantic models of Slack messages (`bot.importing.messages`), the channel and a
way to name users. The rules are the live bot's:
- 📌 on a message makes a note with the message's own time (a leading `10:42`/`~10:42` dates it) and author;
  🟡 raises a yellow flag. The reactor is the first user in the reaction's `users`.
- `/inc …` typed as text is a command the bot never saw (Slack does not post a slash command it delivers), so it is
  parsed with the /inc grammar and applied at the message's time. If the history also holds the bot's confirmation of
  the same command (its metadata says which, `bot.importing.receipts`), the bot did see it and the store already
  holds it: it is not applied again.
- The bot's own messages (its confirmations, headers, progress) never become entries.

Importing twice changes nothing: every entry made from a message carries a dedupe key derived from the message's
channel and ts (`entries.dedupe_key`), so a second import finds it and counts it as already present.
"""

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import IntegrityError

from bot.config import Settings
from bot.errors import RewindError, UsageError
from bot.grammar import commands as grammar
from bot.grammar.times import split_leading_time
from bot.importing.messages import ChannelInfo, SlackMessage
from bot.importing.receipts import UNKNOWN_BOT, BotIdentity, command_signature, own_messages
from bot.scribe.entries import AlreadyRecorded, Origin, dedupe_key
from bot.scribe.incidents import IncidentService
from bot.scribe.runofshow import RunOfShowService
from bot.scribe.timeline import MessageRef, TimelineService
from bot.store.models import EntryKind, EntrySource, TaskKind
from bot.store.session import Store
from bot.store.types import utcnow

Clock = Callable[[], datetime]
NameOf = Callable[[str], str]

# Messages that say something. Joins, topic changes, deletions and the like are not part of the story.
CONTENT_SUBTYPES = frozenset({None, "thread_broadcast", "file_share", "me_message", "bot_message"})


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


class HistoryImporter:
    """Applies the scribe's rules to a channel's messages. Safe to run again: nothing already imported is redone."""

    def __init__(self, store: Store, settings: Settings, clock: Clock = utcnow) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock
        self.timeline = TimelineService(store, clock)
        self.runofshow = RunOfShowService(store, clock)

    def import_history(
        self,
        channel: ChannelInfo,
        messages: Iterable[SlackMessage],
        name_of: NameOf,
        *,
        bot: BotIdentity = UNKNOWN_BOT,
    ) -> ImportResult:
        """`bot` names the ids the bot posts under, when known; its replies to commands are recognised without."""
        ordered = _chronological(messages)
        result = ImportResult(messages=len(ordered))
        ours = own_messages(ordered, bot)
        result.bot_messages = len(ours.ts)
        result.declared = self._ensure_incident(channel, ordered, name_of)
        for message in ordered:
            if message.ts not in ours.ts:
                self._import_message(channel.id, message, name_of, ours.confirmed, result)
        return result

    # --- rules

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
        self, channel_id: str, message: SlackMessage, name_of: NameOf, confirmed: frozenset[str], result: ImportResult
    ) -> None:
        author_name = name_of(message.author_id) if message.user else message.bot_name
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
        confirmed: frozenset[str],
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
        """Impact/cause/question, a flag resolution or a task typed as text, once per message. True if created.

        The scribe's own services apply it, as they do the live command, dated when the message was posted."""
        key_kind = {grammar.FlagResolve: "resolve"}.get(type(command), command.name)
        origin = Origin(channel_id, message.ts, dedupe_key(key_kind, channel_id, message.ts))
        when, author, source = message.posted, message.author_id, EntrySource.IMPORT
        try:
            if isinstance(command, grammar.SectionText):
                self.timeline.add(
                    channel_id,
                    EntryKind(command.name),
                    command.text,
                    author,
                    at=when,
                    author_name=author_name,
                    source=source,
                    origin=origin,
                )
            elif isinstance(command, grammar.FlagResolve):
                self.timeline.resolve_flag(
                    channel_id,
                    command.number,
                    command.resolution,
                    author,
                    author_name,
                    at=when,
                    source=source,
                    origin=origin,
                )
            else:
                kind = TaskKind.ASSIGNMENT if command.name == "assign" else TaskKind.ACTION
                self.runofshow.create_task(
                    channel_id,
                    kind,
                    command.owner,
                    command.text,
                    author,
                    author_name,
                    at=when,
                    source=source,
                    origin=origin,
                )
        except (AlreadyRecorded, IntegrityError):
            return False  # imported before, or by another import of the same history a moment ago
        return True


def _chronological(messages: Iterable[SlackMessage]) -> list[SlackMessage]:
    """Oldest first, each message once (a thread broadcast shows in the channel and in its thread)."""
    unique: dict[str, SlackMessage] = {}
    for message in messages:
        if message.type == "message" and message.subtype in CONTENT_SUBTYPES:
            unique.setdefault(message.ts, message)
    return sorted(unique.values(), key=lambda m: m.key)


def _hhmm(when: datetime) -> str:
    return f"{when:%Y-%m-%d %H:%M} UTC"
