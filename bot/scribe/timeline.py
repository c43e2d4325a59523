"""The timeline: notes and yellow flags, from commands and from messages (📌, 🟡, the shortcut, imports).

Idempotency is enforced by the store: a Slack event id is claimed by inserting it (`slack_events`), and one
message gives at most one entry of each kind (`entries.dedupe_key`). Both hold across bot processes.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.errors import NotFoundError, UsageError
from bot.scribe.entries import Origin, claim_origin, dedupe_key, find_by_origin, new_entry
from bot.scribe.incidents import require_incident
from bot.store.models import (
    Entry,
    EntryKind,
    EntryReactor,
    EntrySource,
    Flag,
    FlagStatus,
    Incident,
    SlackEvent,
)
from bot.store.session import Store
from bot.store.types import utcnow

Clock = Callable[[], datetime]
MESSAGE_KINDS = (EntryKind.NOTE, EntryKind.FLAG)


class DuplicateEvent(Exception):
    """This Slack event id was already handled (a redelivery, or another process got it first)."""


@dataclass(frozen=True)
class MessageRef:
    """A Slack message that became (or may become) an entry."""

    channel_id: str
    ts: str
    author_id: str
    text: str
    occurred_at: datetime
    approximate: bool = False
    permalink: str | None = None
    author_name: str | None = None


@dataclass(frozen=True)
class Recorded:
    entry_id: int
    kind: str
    created: bool  # False: the message was already on the timeline (another reaction, a redelivery)
    flag_number: int | None = None


def claim_event(session: Session, event_id: str | None) -> None:
    """Insert the event id inside the caller's transaction; a duplicate raises DuplicateEvent on flush."""
    if not event_id:
        return
    session.add(SlackEvent(event_id=event_id))
    try:
        session.flush()
    except IntegrityError as exc:
        raise DuplicateEvent(event_id) from exc


def next_number(session: Session, model: type[Flag], incident_id: int) -> int:
    current = session.scalar(select(func.max(model.number)).where(model.incident_id == incident_id))
    return (current or 0) + 1


class TimelineService:
    def __init__(self, store: Store, clock: Clock = utcnow) -> None:
        self.store = store
        self.clock = clock

    # --- commands -------------------------------------------------------------------------------------------

    def add(
        self,
        channel_id: str,
        kind: EntryKind,
        text: str,
        user_id: str,
        *,
        at: datetime | None = None,
        approximate: bool = False,
        author_name: str | None = None,
        data: dict[str, Any] | None = None,
        source: EntrySource = EntrySource.COMMAND,
        origin: Origin | None = None,
    ) -> Entry:
        """A timeline entry of any kind typed as a command (note, impact, cause, question, …).

        With `origin` (a command read back from the channel's history) it is made once per message: AlreadyRecorded
        if that message made it before."""
        now = self.clock()
        with self.store.transaction() as session:
            incident = require_incident(session, channel_id, lock=origin is not None)  # one import of a message
            claim_origin(session, incident, origin)
            entry = new_entry(
                incident,
                kind,
                author=user_id,
                author_name=author_name,
                text=text,
                occurred_at=at or now,
                recorded_at=now,
                approximate=approximate,
                source=source,
                origin=origin,
                data=data,
            )
            _added(session, entry)
            return entry

    def raise_flag(
        self,
        channel_id: str,
        text: str,
        user_id: str,
        *,
        at: datetime | None = None,
        approximate: bool = False,
        author_name: str | None = None,
        data: dict[str, Any] | None = None,
        source: EntrySource = EntrySource.COMMAND,
    ) -> Flag:
        now = self.clock()
        with self.store.transaction() as session:
            incident = require_incident(session, channel_id, lock=True)
            entry = new_entry(
                incident,
                EntryKind.FLAG,
                author=user_id,
                author_name=author_name,
                text=text,
                occurred_at=at or now,
                recorded_at=now,
                approximate=approximate,
                source=source,
                data=data,
            )
            return _new_flag(session, incident, entry)

    def resolve_flag(
        self,
        channel_id: str,
        number: int,
        resolution: str,
        user_id: str,
        author_name: str | None = None,
        *,
        at: datetime | None = None,
        source: EntrySource = EntrySource.COMMAND,
        origin: Origin | None = None,
    ) -> Flag:
        """Resolve flag `number`, resolved `at` (when the command was typed, if it was read back from history)."""
        now = self.clock()
        with self.store.transaction() as session:
            incident = require_incident(session, channel_id, lock=origin is not None)  # one import of a message
            claim_origin(session, incident, origin)
            flag = session.scalars(
                select(Flag).where(Flag.incident_id == incident.id, Flag.number == number).with_for_update()
            ).one_or_none()
            if flag is None:
                raise NotFoundError(f"There is no yellow flag {number}. `/inc flags` lists them with their numbers.")
            if flag.status == FlagStatus.RESOLVED:
                raise UsageError(f"Yellow flag {number} is already resolved: {flag.resolution}", "/inc flags")
            flag.status, flag.resolution = FlagStatus.RESOLVED, resolution
            flag.resolved_by, flag.resolved_at = user_id, at or now
            entry = new_entry(
                incident,
                EntryKind.NOTE,
                author=user_id,
                author_name=author_name,
                text=f"Yellow flag {number} resolved: {resolution}",
                occurred_at=at or now,
                recorded_at=now,
                source=source,
                origin=origin,
                data={"resolves_flag": number},
            )
            session.add(entry)
            return flag

    def flags(self, channel_id: str) -> list[tuple[Flag, Entry]]:
        with self.store.transaction() as session:
            incident = require_incident(session, channel_id)
            rows = session.execute(
                select(Flag, Entry)
                .join(Entry, Flag.entry_id == Entry.id)
                .where(Flag.incident_id == incident.id, Entry.deleted_at.is_(None))
                .order_by(Flag.number)
            ).all()
            return [(flag, entry) for flag, entry in rows]

    def recent(self, channel_id: str, limit: int) -> list[Entry]:
        with self.store.transaction() as session:
            incident = require_incident(session, channel_id)
            rows = session.scalars(
                select(Entry)
                .where(Entry.incident_id == incident.id, Entry.deleted_at.is_(None))
                .order_by(Entry.occurred_at.desc(), Entry.id.desc())
                .limit(limit)
            )
            return list(rows)[::-1]

    # --- messages (📌, 🟡, the shortcut, history import) ---------------------------------------------------------

    def record_message(
        self,
        message: MessageRef,
        kind: EntryKind,
        reactor_id: str,
        *,
        source: EntrySource,
        event_id: str | None = None,
    ) -> Recorded:
        """Put a message on the timeline once, however many people react and however often Slack redelivers."""
        if kind not in MESSAGE_KINDS:
            raise ValueError(f"messages become notes or flags, not {kind}")
        for attempt in range(2):
            try:
                return self._record_message(message, kind, reactor_id, source, event_id)
            except IntegrityError:
                # Another process inserted the same message's entry between our read and our insert.
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def _record_message(
        self, message: MessageRef, kind: EntryKind, reactor_id: str, source: EntrySource, event_id: str | None
    ) -> Recorded:
        now = self.clock()
        key = dedupe_key(kind, message.channel_id, message.ts)
        with self.store.transaction() as session:
            incident = require_incident(session, message.channel_id, lock=kind == EntryKind.FLAG)
            claim_event(session, event_id)
            entry = find_by_origin(session, incident, key)
            created = entry is None or entry.deleted_at is not None
            if entry is None:
                entry = new_entry(
                    incident,
                    kind,
                    author=message.author_id,
                    author_name=message.author_name,
                    text=message.text,
                    occurred_at=message.occurred_at,
                    recorded_at=now,
                    approximate=message.approximate,
                    source=source,
                    origin=Origin(message.channel_id, message.ts, key, message.permalink),
                )
                flag = _new_flag(session, incident, entry) if kind == EntryKind.FLAG else _added(session, entry)
            else:
                entry.deleted_at = None
                flag = session.scalars(select(Flag).where(Flag.entry_id == entry.id)).one_or_none()
            if session.get(EntryReactor, (entry.id, reactor_id)) is None:
                session.add(EntryReactor(entry_id=entry.id, user_id=reactor_id, reacted_at=now))
            session.flush()
            return Recorded(entry.id, kind, created, flag.number if flag else None)

    def withdraw_reaction(
        self, channel_id: str, ts: str, kind: EntryKind, reactor_id: str, *, event_id: str | None = None
    ) -> Entry | None:
        """The reactor took their 📌/🟡 back; the entry is hidden when nobody's reaction holds it any more."""
        now = self.clock()
        with self.store.transaction() as session:
            incident = require_incident(session, channel_id)
            claim_event(session, event_id)
            entry = find_by_origin(session, incident, dedupe_key(kind, channel_id, ts))
            if entry is None or entry.deleted_at is not None:
                return None
            reactor = session.get(EntryReactor, (entry.id, reactor_id))
            if reactor is not None:
                session.delete(reactor)
                session.flush()
            remaining = session.scalar(select(func.count()).where(EntryReactor.entry_id == entry.id))
            if remaining:
                return None
            entry.deleted_at = now
            return entry

    def edit_message(self, channel_id: str, ts: str, text: str, *, event_id: str | None = None) -> list[Entry]:
        """A message on the timeline was edited in Slack: its entries follow."""
        with self.store.transaction() as session:
            incident = session.scalars(select(Incident).where(Incident.channel_id == channel_id)).one_or_none()
            if incident is None:
                return []
            claim_event(session, event_id)
            entries = list(
                session.scalars(
                    select(Entry).where(
                        Entry.incident_id == incident.id, Entry.source_channel == channel_id, Entry.source_ts == ts
                    )
                )
            )
            for entry in entries:
                entry.text = text
            return entries


def _added(session: Session, entry: Entry) -> None:
    """Insert now: the reactor row needs the entry's id."""
    session.add(entry)
    session.flush()


def _new_flag(session: Session, incident: Incident, entry: Entry) -> Flag:
    _added(session, entry)
    flag = Flag(incident_id=incident.id, number=next_number(session, Flag, incident.id), entry_id=entry.id)
    session.add(flag)
    session.flush()
    return flag
