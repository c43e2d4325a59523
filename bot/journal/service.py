"""Journal services on plain values: start, sync (claimed), status, WAL-retention check, stop, prune, log, row.

Every function takes the store and the configured targets; none knows about Slack. `sync_journal` is what the
scheduler of `rewind run` calls for every journal: the claim in the store makes several bot processes sync each
journal once, and the compare-and-set on progress keeps the journal exact even if a claim expires mid-sync.
"""

import json
import os
import socket
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel
from sqlalchemy import case, delete, func, or_, select

from bot.journal.store import StoreSink, chunk_of, claim, relation_columns, release
from bot.store import Store
from bot.store.journal_models import Journal, JournalChunk, JournalTransaction
from bot.store.types import utcnow
from restore.errors import RewindError
from restore.journal import slot as slots
from restore.journal.chunks import Change, Chunk, key_json, key_needles
from restore.journal.pgoutput import lsn_text
from restore.journal.sync import SyncStats, drain
from restore.targets import Target, TargetRole, looks_like_dsn, mask_dsn, resolve_target

DEFAULT_CLAIM = timedelta(minutes=10)


class JournalNotFound(RewindError):
    """No journal of that name in the state store."""


# --- lookups ----------------------------------------------------------------------------------------------------


def get_journal(store: Store, name: str | None) -> Journal:
    """A journal by name; without a name, the only journal there is."""
    with store.transaction() as session:
        if name:
            found = session.scalars(select(Journal).where(Journal.name == name)).one_or_none()
            if found is None:
                known = ", ".join(session.scalars(select(Journal.name).order_by(Journal.name))) or "none"
                raise JournalNotFound(f"No journal named {name!r}. Journals: {known}. Start one: rewind journal start.")
            return found
        journals = list(session.scalars(select(Journal).order_by(Journal.name)))
    if len(journals) != 1:
        names = ", ".join(j.name for j in journals)
        raise JournalNotFound(
            f"Name the journal with --name ({names})." if journals else "No journal yet: rewind journal start."
        )
    return journals[0]


def journal_names(store: Store) -> list[str]:
    """Every running (not stopped) journal: what the scheduler syncs."""
    with store.transaction() as session:
        return list(session.scalars(select(Journal.name).where(Journal.stopped_at.is_(None)).order_by(Journal.name)))


def journals_of(store: Store, target: str) -> list[str]:
    """The running journals that record `target` (a configured target's name)."""
    with store.transaction() as session:
        running = select(Journal.name).where(Journal.target == target, Journal.stopped_at.is_(None))
        return list(session.scalars(running.order_by(Journal.name)))


def target_dsn(journal: Journal, targets: Mapping[str, Target]) -> str:
    if journal.target in targets:
        return targets[journal.target].dsn
    if looks_like_dsn(journal.target):
        return journal.target
    raise RewindError(
        f"Journal {journal.name!r} reads target {journal.target!r}, which is not configured any more; "
        "add it to REWIND_TARGETS."
    )


# --- start / stop -----------------------------------------------------------------------------------------------


class StartResult(BaseModel):
    journal: str
    target: str
    slot: str
    publication: str
    tables: list[str] | None
    start_lsn: str
    identity_set_full: list[str]


def start_journal(
    store: Store,
    targets: Mapping[str, Target],
    target: str,
    *,
    name: str | None = None,
    tables: Sequence[str] = (),
    set_replica_identity_full: bool = False,
) -> StartResult:
    if looks_like_dsn(target) and not name:
        raise RewindError("--name is required when --target is a DSN: the journal is found by that name later.")
    resolved = resolve_target(target, targets, TargetRole.PRODUCTION)
    name = name or resolved.name
    with store.transaction() as session:
        if session.scalars(select(Journal).where(Journal.name == name, Journal.stopped_at.is_(None))).first():
            raise RewindError(f"Journal {name!r} is already running: rewind journal status --name {name}.")
    started = slots.start_capture(
        resolved.dsn, name, list(tables) or None, set_replica_identity_full=set_replica_identity_full
    )
    try:
        with store.transaction() as session:
            # A stopped journal of the same name is replaced; its rows go with it.
            session.execute(delete(Journal).where(Journal.name == name))
            session.add(
                Journal(
                    name=name,
                    target=target,
                    slot_name=started.slot,
                    publication=started.publication,
                    tables={"tables": started.tables} if started.tables is not None else None,
                    start_lsn=slots.parse_lsn(started.start_lsn),
                    end_lsn=0,
                    inflight_seq=0,
                )
            )
    except BaseException:
        # A slot no journal knows about would retain WAL on production until its disk fills: drop it.
        slots.stop_capture(resolved.dsn, started.slot, started.publication)
        raise
    return StartResult(journal=name, target=mask_dsn(target), **started.model_dump())


class StopResult(BaseModel):
    journal: str
    slot_dropped: bool


def stop_journal(store: Store, targets: Mapping[str, Target], name: str | None) -> StopResult:
    journal = get_journal(store, name)
    dropped = slots.stop_capture(target_dsn(journal, targets), journal.slot_name, journal.publication)
    with store.transaction() as session:
        session.get_one(Journal, journal.id).stopped_at = utcnow()
    return StopResult(journal=journal.name, slot_dropped=dropped)


# --- sync -------------------------------------------------------------------------------------------------------


class SyncResult(BaseModel):
    journal: str
    synced: bool  # False: another process holds the claim, nothing was done
    claimed_by: str | None = None
    stats: SyncStats | None = None


def default_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def sync_journal(
    store: Store,
    targets: Mapping[str, Target],
    name: str | None,
    *,
    owner: str | None = None,
    claim_for: timedelta = DEFAULT_CLAIM,
    batch: int = 20000,
    peek_changes: int = 200_000,
) -> SyncResult:
    """Drains the journal's slot into the store, once even when several processes call it at the same time."""
    journal = get_journal(store, name)
    if journal.stopped_at is not None:
        raise RewindError(f"Journal {journal.name!r} was stopped; start it again to record changes.")
    owner = owner or default_owner()
    if not claim(store, journal.id, owner, claim_for):
        with store.transaction() as session:
            holder = session.get_one(Journal, journal.id).claimed_by
        return SyncResult(journal=journal.name, synced=False, claimed_by=holder)
    try:
        sink = StoreSink(store, journal.id, owner, claim_for)
        stats = drain(
            target_dsn(journal, targets),
            journal.slot_name,
            journal.publication,
            sink,
            batch=batch,
            peek_changes=peek_changes,
        )
        with store.transaction() as session:
            row = session.get_one(Journal, journal.id)
            row.last_sync_at = utcnow()
            row.last_sync = stats.model_dump()
    finally:
        release(store, journal.id, owner)
    return SyncResult(journal=journal.name, synced=True, claimed_by=owner, stats=stats)


# --- status and the WAL guard ---------------------------------------------------------------------------------


class JournalStatus(BaseModel):
    journal: str
    target: str
    running: bool
    slot: slots.SlotStatus | None
    stored_lsn: str
    last_sync_at: datetime | None
    last_sync: dict[str, Any] | None
    transactions: int
    changes: int
    oldest_commit: datetime | None
    newest_commit: datetime | None


def journal_status(store: Store, targets: Mapping[str, Target], name: str | None) -> JournalStatus:
    journal = get_journal(store, name)
    slot = None
    if journal.stopped_at is None:
        slot = slots.slot_status(target_dsn(journal, targets), journal.slot_name)
    with store.transaction() as session:
        txns, oldest, newest = session.execute(
            select(
                func.count(), func.min(JournalTransaction.commit_time), func.max(JournalTransaction.commit_time)
            ).where(JournalTransaction.journal_id == journal.id)
        ).one()
        changes = session.scalar(
            select(func.coalesce(func.sum(JournalTransaction.changes), 0)).where(
                JournalTransaction.journal_id == journal.id
            )
        )
    return JournalStatus(
        journal=journal.name,
        target=mask_dsn(journal.target),
        running=journal.stopped_at is None,
        slot=slot,
        stored_lsn=lsn_text(journal.end_lsn),
        last_sync_at=journal.last_sync_at,
        last_sync=journal.last_sync,
        transactions=txns,
        changes=int(changes or 0),
        oldest_commit=oldest,
        newest_commit=newest,
    )


class WalAlert(BaseModel):
    journal: str
    retained_wal_bytes: int
    limit_bytes: int
    slot_missing: bool = False


def retained_wal_over_limit(
    store: Store, targets: Mapping[str, Target], name: str, limit_bytes: int
) -> WalAlert | None:
    """A warning to post when the slot keeps more WAL on production than `limit_bytes` (or has vanished)."""
    status = journal_status(store, targets, name)
    if not status.running or status.slot is None:
        return None
    if not status.slot.exists:
        return WalAlert(journal=name, retained_wal_bytes=0, limit_bytes=limit_bytes, slot_missing=True)
    if status.slot.retained_wal_bytes > limit_bytes:
        return WalAlert(journal=name, retained_wal_bytes=status.slot.retained_wal_bytes, limit_bytes=limit_bytes)
    return None


# --- prune ------------------------------------------------------------------------------------------------------


class PruneResult(BaseModel):
    journal: str
    before: datetime
    transactions: int
    changes: int


def prune_journal(store: Store, name: str | None, older_than: timedelta, now: datetime | None = None) -> PruneResult:
    journal = get_journal(store, name)
    cutoff = (now or utcnow()) - older_than
    with store.transaction() as session:
        lsns = select(JournalTransaction.commit_lsn).where(
            JournalTransaction.journal_id == journal.id, JournalTransaction.commit_time < cutoff
        )
        old_chunks = (JournalChunk.journal_id == journal.id, JournalChunk.commit_time < cutoff)
        changes = session.scalar(select(func.coalesce(func.sum(JournalChunk.changes), 0)).where(*old_chunks))
        session.execute(delete(JournalChunk).where(*old_chunks))
        txns = session.execute(
            delete(JournalTransaction).where(
                JournalTransaction.journal_id == journal.id, JournalTransaction.commit_lsn.in_(lsns.scalar_subquery())
            )
        ).rowcount
    return PruneResult(journal=journal.name, before=cutoff, transactions=txns, changes=changes)


def parse_age(text: str) -> timedelta:
    """`7d`, `12h`, `30m` -> a duration."""
    units = {"d": "days", "h": "hours", "m": "minutes", "w": "weeks"}
    raw = text.strip().lower()
    if raw[:-1].isdigit() and raw[-1:] in units:
        return timedelta(**{units[raw[-1]]: int(raw[:-1])})
    raise RewindError(f"Cannot read the age {text!r}; write it like 7d, 12h or 30m.")


# --- reading ----------------------------------------------------------------------------------------------------


class LogTransaction(BaseModel):
    xid: int
    full_xid: int
    commit_time: datetime
    lsn: str
    tables: dict[str, dict[str, int]]
    truncated: list[str]


class LogResult(BaseModel):
    transactions: list[LogTransaction]


def _table_filter(session: Any, journal_id: int, tables: Sequence[str]) -> list[str]:
    """Journal table names for what the user typed: `public.products`, or `products` in any schema."""
    if not tables:
        return []
    known = set(
        session.scalars(select(JournalChunk.table_name).where(JournalChunk.journal_id == journal_id).distinct())
    )
    chosen = []
    for t in tables:
        matches = [t] if "." in t else sorted(k for k in known if k.split(".", 1)[1] == t)
        chosen += matches or [t if "." in t else f"public.{t}"]
    return chosen


def journal_log(
    store: Store,
    name: str | None,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    tables: Sequence[str] = (),
    limit: int | None = None,
) -> LogResult:
    journal = get_journal(store, name)
    with store.transaction() as session:
        chosen = _table_filter(session, journal.id, tables)
        truncates = func.sum(case((JournalChunk.ops == "T", 1), else_=0))
        sums = (func.sum(JournalChunk.inserts), func.sum(JournalChunk.updates), func.sum(JournalChunk.deletes))
        query = select(JournalChunk.commit_lsn, JournalChunk.table_name, *sums, truncates).where(
            JournalChunk.journal_id == journal.id
        )
        txq = select(JournalTransaction).where(JournalTransaction.journal_id == journal.id)
        if since:
            query = query.where(JournalChunk.commit_time >= since)
            txq = txq.where(JournalTransaction.commit_time >= since)
        if until:
            query = query.where(JournalChunk.commit_time <= until)
            txq = txq.where(JournalTransaction.commit_time <= until)
        if chosen:
            query = query.where(JournalChunk.table_name.in_(chosen))
        counts: dict[int, dict[str, dict[str, int]]] = defaultdict(dict)
        truncated: dict[int, list[str]] = defaultdict(list)
        for lsn, table, inserts, updates, deletes, truncs in session.execute(
            query.group_by(JournalChunk.commit_lsn, JournalChunk.table_name)
        ):
            if truncs:
                truncated[lsn].append(table)
            if inserts or updates or deletes:
                counts[lsn][table] = {"insert": inserts, "update": updates, "delete": deletes}
        txns = list(session.scalars(txq.order_by(JournalTransaction.commit_lsn)))
    shown = [
        LogTransaction(
            xid=t.xid,
            full_xid=t.full_xid,
            commit_time=t.commit_time,
            lsn=lsn_text(t.commit_lsn),
            tables=dict(sorted(counts.get(t.commit_lsn, {}).items())),
            truncated=sorted(truncated.get(t.commit_lsn, [])),
        )
        for t in txns
        if t.commit_lsn in counts or t.commit_lsn in truncated
    ]
    return LogResult(transactions=shown[-limit:] if limit else shown)


class RowVersion(BaseModel):
    xid: int
    commit_time: datetime
    lsn: str
    op: str
    key: list[Any] | None
    row: dict[str, Any] | None  # the row after this change (None once deleted)
    old: dict[str, Any] | None


class RowHistory(BaseModel):
    journal: str
    table: str
    key: list[str]
    versions: list[RowVersion]


def parse_key(text: str) -> list[str]:
    """`42`, `a,1` or a JSON array `["a", 1]` -> the key's text values."""
    raw = text.strip()
    if raw.startswith("["):
        try:
            return [str(v) if not isinstance(v, bool) else str(v).lower() for v in json.loads(raw)]
        except ValueError as exc:
            raise RewindError(f'--key {text!r} is not a JSON array; write 42, a,1 or ["a", 1].') from exc
    return [part.strip() for part in raw.split(",")]


def row_history(store: Store, name: str | None, table: str, key: str | Sequence[str]) -> RowHistory:
    journal = get_journal(store, name)
    values = parse_key(key) if isinstance(key, str) else [str(k) for k in key]
    with store.transaction() as session:
        tables = _table_filter(session, journal.id, [table])
        changes = _changes_of_row(session, journal.id, tables, values)
    return RowHistory(
        journal=journal.name,
        table=tables[0],
        key=values,
        versions=[
            RowVersion(
                xid=c.xid,
                commit_time=c.commit_time,
                lsn=lsn_text(c.lsn),
                op=c.op,
                key=c.key,
                row=c.new,
                old=c.old,
            )
            for c in changes
        ],
    )


def _changes_of_row(session: Any, journal_id: int, tables: Sequence[str], values: Sequence[str]) -> list[Change]:
    """Every change to the row with this key (as its key, or as the key an update changed), in commit order. The
    database finds the chunks that mention the key; each is then read for the exact changes."""
    needles = key_needles(values)
    chunks = session.scalars(
        select(JournalChunk)
        .where(
            JournalChunk.journal_id == journal_id,
            JournalChunk.table_name.in_(tables),
            or_(*(JournalChunk.keys.contains(n, autoescape=True) for n in needles)),
        )
        .order_by(JournalChunk.commit_lsn, JournalChunk.seq)
    )
    columns = relation_columns(session, journal_id)
    wanted = key_json(values)
    found = []
    for row in chunks:
        chunk = chunk_of(row, columns)
        found += [chunk.change(i) for i, line in enumerate(chunk.keys) if wanted in line.split("\t")]
    return found


# --- gap: what the journal holds that the backup does not --------------------------------------------------------


class RestorableRow(BaseModel):
    table: str
    key: list[str]
    op: str  # the journal's last change of the row: delete (undo re-inserts it) or update (undo sets it back)
    xid: int
    commit_time: datetime


class JournalCoverage(BaseModel):
    journal: str
    covers_backup_time: bool  # the journal started before the backup, so it holds every change since
    restorable: list[RestorableRow]


def journal_coverage(
    store: Store, name: str | None, backup_time: datetime, rows: Sequence[tuple[str, Sequence[Any]]]
) -> JournalCoverage:
    """For rows `rewind gap` names (table, key): the ones the journal can restore, with the transaction to undo."""
    journal = get_journal(store, name)
    named = [(table, [str(v).lower() if isinstance(v, bool) else str(v) for v in key]) for table, key in rows]
    wanted: dict[str, set[str]] = defaultdict(set)  # table -> keys as stored
    for table, values in named:
        wanted[table].add(key_json(values) or "")
    with store.transaction() as session:
        columns = relation_columns(session, journal.id)
        last = {t: _last_updates_or_deletes(session, journal.id, t, keys, columns) for t, keys in wanted.items()}
    restorable = []
    for table, values in named:
        change = last[table].get(key_json(values) or "")
        if change is not None and change.old is not None:
            restorable.append(
                RestorableRow(table=table, key=values, op=change.op, xid=change.xid, commit_time=change.commit_time)
            )
    return JournalCoverage(
        journal=journal.name, covers_backup_time=journal.created_at <= backup_time, restorable=restorable
    )


def _last_updates_or_deletes(
    session: Any, journal_id: int, table: str, keys: set[str], columns: dict[int, tuple[str, ...]]
) -> dict[str, Change]:
    """For each key (as stored), the journal's last update or delete of that row, if any. One pass over the
    table's chunks reads only their keys and ops; bodies are read only for the chunks that hold an answer."""
    last: dict[str, tuple[int, int, int]] = {}  # key -> (commit_lsn, seq of the chunk, index in it)
    light = select(JournalChunk.commit_lsn, JournalChunk.seq, JournalChunk.ops, JournalChunk.keys).where(
        JournalChunk.journal_id == journal_id, JournalChunk.table_name == table
    )
    for commit_lsn, seq, ops, lines in session.execute(light.order_by(JournalChunk.commit_lsn, JournalChunk.seq)):
        for i, line in enumerate(lines[1:-1].split("\n")):
            if ops[i] in "UD":
                for key in line.split("\t"):
                    if key in keys:
                        last[key] = (commit_lsn, seq, i)
    chunks: dict[tuple[int, int], Chunk] = {}
    found = {}
    for key, (commit_lsn, seq, i) in sorted(last.items(), key=lambda item: item[1]):
        if (commit_lsn, seq) not in chunks:
            chunks[(commit_lsn, seq)] = chunk_of(session.get(JournalChunk, (journal_id, commit_lsn, seq)), columns)
        found[key] = chunks[(commit_lsn, seq)].change(i)
    return found
