"""Timeline entries are made here and nowhere else, so the same event gives the same entry however it arrived:
typed as a command, pinned, approved, or read back from the channel's history."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.store.models import Entry, EntryKind, EntrySource, Incident


@dataclass(frozen=True)
class Origin:
    """The Slack message an entry was made from. `dedupe_key` allows one entry of a kind per message."""

    channel_id: str
    ts: str
    dedupe_key: str
    permalink: str | None = None


def dedupe_key(kind: str, channel_id: str, ts: str) -> str:
    return f"{kind}:{channel_id}:{ts}"


class AlreadyRecorded(Exception):
    """The message this entry would be made from already made it (an import run again, or run twice at once)."""


def new_entry(
    incident: Incident,
    kind: EntryKind,
    *,
    author: str,
    text: str,
    occurred_at: datetime,
    recorded_at: datetime,
    author_name: str | None = None,
    approximate: bool = False,
    source: EntrySource = EntrySource.COMMAND,
    origin: Origin | None = None,
    data: dict[str, Any] | None = None,
) -> Entry:
    """An entry of `incident`: what happened at `occurred_at`, recorded at `recorded_at` (later when backdated)."""
    return Entry(
        incident_id=incident.id,
        kind=kind,
        text=text,
        author_id=author,
        author_name=author_name,
        occurred_at=occurred_at,
        approximate=approximate,
        recorded_at=recorded_at,
        source=source,
        source_channel=origin.channel_id if origin else None,
        source_ts=origin.ts if origin else None,
        permalink=origin.permalink if origin else None,
        dedupe_key=origin.dedupe_key if origin else None,
        data=data,
    )


def find_by_origin(session: Session, incident: Incident, dedupe_key: str) -> Entry | None:
    """The entry a message already made, hidden (withdrawn) or not."""
    query = select(Entry).where(Entry.incident_id == incident.id, Entry.dedupe_key == dedupe_key)
    return session.scalars(query).one_or_none()


def claim_origin(session: Session, incident: Incident, origin: Origin | None) -> None:
    """Raise AlreadyRecorded if `origin` already made an entry; call before changing anything else."""
    if origin is not None and find_by_origin(session, incident, origin.dedupe_key) is not None:
        raise AlreadyRecorded(origin.dedupe_key)
