"""Incidents: declare or adopt a channel, change status, and the at-a-glance summary."""

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.errors import NotInIncidentError, UsageError
from bot.scribe.entries import new_entry
from bot.store.models import (
    Entry,
    EntryKind,
    Flag,
    FlagStatus,
    Incident,
    IncidentStatus,
    Step,
    Task,
    TaskStatus,
)
from bot.store.session import Store
from bot.store.types import utcnow

CHANNEL_PREFIX = "inc-"
MAX_CHANNEL_NAME = 80
Clock = Callable[[], datetime]


def channel_name_for(title: str, day: datetime) -> str:
    """`inc-YYYYMMDD-<slug>`: lowercase letters, digits and dashes, within Slack's 80 characters."""
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_title.lower()).strip("-") or "incident"
    name = f"{CHANNEL_PREFIX}{day:%Y%m%d}-{slug}"
    return name[:MAX_CHANNEL_NAME].rstrip("-")


def is_incident_channel_name(name: str | None) -> bool:
    return bool(name and name.startswith(CHANNEL_PREFIX))


def not_in_incident(slash: str = "/inc") -> NotInIncidentError:
    return NotInIncidentError(
        "This channel isn't an incident channel. Declare one with "
        f"`{slash} declare <title>`, or adopt this channel with `{slash} declare --here <title>`."
    )


def require_incident(session: Session, channel_id: str, *, lock: bool = False) -> Incident:
    """The channel's incident; with `lock`, its row is held until commit, so numbering (flags, steps, proposals)
    is one writer at a time. The lock is FOR NO KEY UPDATE: a plain FOR UPDATE also blocks every insert that
    references the incident (an entry's foreign-key check), which deadlocked a decision holding its proposal
    against a new proposal holding the incident."""
    query = select(Incident).where(Incident.channel_id == channel_id)
    if lock:
        query = query.with_for_update(key_share=True)
    incident = session.scalars(query).one_or_none()
    if incident is None:
        raise not_in_incident()
    return incident


@dataclass(frozen=True)
class Summary:
    incident: Incident
    open_flags: list[tuple[Flag, Entry]]
    steps: list[Step]
    open_tasks: list[Task]
    recent: list[Entry]


class IncidentService:
    def __init__(self, store: Store, clock: Clock = utcnow) -> None:
        self.store = store
        self.clock = clock

    def find(self, channel_id: str) -> Incident | None:
        with self.store.transaction() as session:
            return session.scalars(select(Incident).where(Incident.channel_id == channel_id)).one_or_none()

    def open_incidents(self) -> list[Incident]:
        """Incidents still open, the most recently declared first."""
        with self.store.transaction() as session:
            query = select(Incident).where(Incident.status == IncidentStatus.OPEN)
            return list(session.scalars(query.order_by(Incident.declared_at.desc(), Incident.id.desc())))

    def get(self, channel_id: str) -> Incident:
        with self.store.transaction() as session:
            return require_incident(session, channel_id)

    def declare(
        self, *, title: str, user_id: str, channel_id: str, channel_name: str, author_name: str | None = None
    ) -> Incident:
        """Record a new incident in `channel_id` with its declaration on the timeline."""
        now = self.clock()
        with self.store.transaction() as session:
            existing = session.scalars(select(Incident).where(Incident.channel_id == channel_id)).one_or_none()
            if existing is not None:
                raise UsageError(f"#{existing.channel_name} is already the incident “{existing.title}”.", "/inc status")
            incident = Incident(
                channel_id=channel_id,
                channel_name=channel_name,
                title=title,
                status=IncidentStatus.OPEN,
                declared_by=user_id,
                declared_at=now,
            )
            session.add(incident)
            session.flush()
            declared = f"Incident declared: {title}"
            session.add(_status_entry(incident, declared, user_id, author_name, now))
            return incident

    def set_header(self, channel_id: str, ts: str) -> None:
        with self.store.transaction() as session:
            require_incident(session, channel_id).header_ts = ts

    def change_status(
        self, channel_id: str, status: IncidentStatus, user_id: str, author_name: str | None = None
    ) -> Incident:
        now = self.clock()
        with self.store.transaction() as session:
            incident = require_incident(session, channel_id, lock=True)
            if incident.status == status:
                raise UsageError(f"The incident is already {status.value}.", "/inc status")
            if incident.status == IncidentStatus.CLOSED:
                raise UsageError("The incident is closed; its record is final.", "/inc status")
            incident.status = status
            if status == IncidentStatus.RESOLVED:
                incident.resolved_at = now
            elif status == IncidentStatus.CLOSED:
                incident.closed_at = now
                incident.resolved_at = incident.resolved_at or now
            session.add(_status_entry(incident, f"Incident {status.value}", user_id, author_name, now))
            return incident

    def summary(self, channel_id: str, recent: int = 5) -> Summary:
        with self.store.transaction() as session:
            incident = require_incident(session, channel_id)
            flags = session.execute(
                select(Flag, Entry)
                .join(Entry, Flag.entry_id == Entry.id)
                .where(Flag.incident_id == incident.id, Flag.status == FlagStatus.OPEN, Entry.deleted_at.is_(None))
                .order_by(Flag.number)
            ).all()
            steps = session.scalars(select(Step).where(Step.incident_id == incident.id).order_by(Step.position))
            tasks = session.scalars(
                select(Task)
                .where(Task.incident_id == incident.id, Task.status == TaskStatus.OPEN)
                .order_by(Task.kind, Task.number)
            )
            entries = session.scalars(
                select(Entry)
                .where(Entry.incident_id == incident.id, Entry.deleted_at.is_(None))
                .order_by(Entry.occurred_at.desc(), Entry.id.desc())
                .limit(recent)
            )
            return Summary(incident, [tuple(f) for f in flags], list(steps), list(tasks), list(entries)[::-1])


def _status_entry(incident: Incident, text: str, user_id: str, author_name: str | None, now: datetime) -> Entry:
    return new_entry(
        incident, EntryKind.STATUS, author=user_id, author_name=author_name, text=text, occurred_at=now, recorded_at=now
    )
