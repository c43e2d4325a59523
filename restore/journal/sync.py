"""Draining a slot into a journal, exactly once, in bounded batches.

The journal's store (a `Sink`) keeps, in the same transaction as the rows it writes, how far it got: the end LSN of
the last whole transaction stored, and for a transaction stored in several batches (a big one) its commit LSN and
how many of its changes are in. Only after that commit does the slot advance, and only to that end LSN. A sync
killed anywhere re-reads from the slot's position and skips what the store already has:

- a transaction whose commit LSN is before the stored end LSN is stored whole;
- the first `inflight_seq` changes of the in-flight transaction are stored.

Memory stays flat: rows are streamed and written every `batch` changes. Speed comes from not decoding rows while
syncing: a change keeps its message body as pgoutput sent it (old and new tuple data), and only the key columns are
read out of it; `Change.old` / `Change.new` decode the body when someone reads the journal.
"""

import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import psycopg
from pydantic import BaseModel

from restore.journal import pgoutput
from restore.journal.pgoutput import (
    UNCHANGED,
    Begin,
    Commit,
    Relation,
    Truncate,
    lsn_text,
    skip_tuple,
    tuple_prefix,
)
from restore.journal.slot import advance, connect, full_xid_epoch, peek, primary_keys

Row = dict[str, str | None]


@dataclass(slots=True)
class Change:
    commit_lsn: int
    seq: int  # position within its transaction, from 0; with commit_lsn it identifies the change
    lsn: int
    xid: int
    full_xid: int
    commit_time: datetime
    table: str
    op: str  # insert | update | delete | truncate
    key: list[str | None] | None  # the row's key after the change (before it, for a delete)
    old_key: list[str | None] | None  # an update that changed the key: the key before
    oid: int  # the table's oid (0 for a truncate)
    body: bytes | None  # the Insert/Update/Delete message after its tag and oid; None for a truncate
    columns: tuple[str, ...]  # the column names the body's values belong to
    decoded: "tuple[Row | None, Row | None] | None" = field(default=None, repr=False, compare=False)

    @property
    def old(self) -> Row | None:
        """The whole row before the change (only its key when replica identity is not FULL)."""
        return self.rows()[0]

    @property
    def new(self) -> Row | None:
        """The row after the change; an unchanged TOASTed value is the old row's (left out if that is unknown)."""
        return self.rows()[1]

    def rows(self) -> "tuple[Row | None, Row | None]":
        if self.decoded is None:
            self.decoded = rows_of(self.op, self.body, self.columns)
        return self.decoded


def rows_of(op: str, body: bytes | None, columns: Sequence[str]) -> tuple[Row | None, Row | None]:
    if body is None:
        return None, None
    old_values, key_only, new_values = pgoutput.decode_body(op, body)
    old: Row | None = None
    if old_values is not None:
        old = {
            c: v
            for c, v in zip(columns, old_values, strict=True)
            if v is not UNCHANGED and not (key_only and v is None)
        }
    if new_values is None:
        return old, None
    new: Row = {}
    for c, v in zip(columns, new_values, strict=True):
        if v is UNCHANGED:
            if old is None or c not in old:
                continue
            v = old[c]
        new[c] = v
    return old, new


@dataclass(slots=True)
class Transaction:
    xid: int
    full_xid: int
    commit_lsn: int
    end_lsn: int
    commit_time: datetime
    changes: int
    truncated: bool


@dataclass(frozen=True, slots=True)
class Progress:
    end_lsn: int = 0  # end of the last transaction stored whole
    inflight_lsn: int | None = None  # commit LSN of a transaction stored in part
    inflight_seq: int = 0  # how many of its changes are stored


@dataclass(frozen=True, slots=True)
class RelationVersion:
    lsn: int
    oid: int
    table: str
    columns: tuple[str, ...]
    types: tuple[int, ...]


class Sink(Protocol):
    def progress(self) -> Progress: ...

    def write(
        self,
        changes: Sequence[Change],
        transactions: Sequence[Transaction],
        relations: Sequence[RelationVersion],
        before: Progress,
        after: Progress,
    ) -> None:
        """Stores everything and moves progress from `before` to `after` in ONE transaction; raises if the stored
        progress is no longer `before` (another process synced meanwhile)."""
        ...


class SyncStats(BaseModel):
    transactions: int = 0
    changes: int = 0
    skipped_changes: int = 0  # read again after an interrupted sync, already in the journal
    truncates: int = 0
    peeks: int = 0
    batches: int = 0
    end_lsn: str = "0/0"
    seconds: float = 0.0


@dataclass
class _Open:
    begin: Begin
    full_xid: int
    skip: bool
    skip_seq: int
    seq: int = 0
    truncated: bool = False


@dataclass
class _Batch:
    changes: list[Change] = field(default_factory=list)
    transactions: list[Transaction] = field(default_factory=list)
    relations: list[RelationVersion] = field(default_factory=list)


def drain(
    dsn: str,
    slot: str,
    publication: str,
    sink: Sink,
    *,
    batch: int = 5000,
    peek_changes: int = 50000,
) -> SyncStats:
    """Reads every change in the slot into `sink`, then advances the slot past what was stored."""
    started = time.monotonic()
    stats = SyncStats()
    # Two connections: one streams the slot, the other answers catalog questions meanwhile.
    with connect(dsn) as conn, connect(dsn) as catalog, ThreadPoolExecutor(1, "rewind-journal-writer") as writer:
        reader = _Reader(catalog, sink, stats, batch, writer)
        while True:
            stored = sink.progress()
            # A sync killed between the store's commit and the advance left the slot behind: catch it up first.
            if stored.end_lsn:
                advance(conn, slot, stored.end_lsn)
            rows = reader.read(peek(conn, slot, publication, peek_changes), stored)
            stats.peeks += 1
            if reader.stored.end_lsn:
                advance(conn, slot, reader.stored.end_lsn)
            if rows <= peek_changes:
                break
    stats.end_lsn = lsn_text(reader.stored.end_lsn)
    stats.seconds = round(time.monotonic() - started, 3)
    return stats


_ROW_TAGS = frozenset(b"IUD")


class _Reader:
    def __init__(
        self, conn: psycopg.Connection, sink: Sink, stats: SyncStats, batch: int, writer: ThreadPoolExecutor
    ) -> None:
        self.conn, self.sink, self.stats, self.batch_size = conn, sink, stats, batch
        self.current_xid = full_xid_epoch(conn)
        self.keys: dict[int, tuple[str, ...]] = {}  # primary keys by table oid, read once per sync
        self.relation_keys: dict[int, tuple[Relation, tuple[str, ...]]] = {}  # the key for the current Relation
        self.shapes: dict[int, tuple[Relation, tuple[tuple[str, ...], list[int], int]]] = {}
        self.stored = Progress()
        self.writer = writer
        self.pending: Future[None] | None = None

    def read(self, rows: Iterator[tuple[int, bytes]], stored: Progress) -> int:
        self.stored = stored
        state = stored
        relations: dict[int, Relation] = {}
        batch = _Batch()
        txn: _Open | None = None
        count = 0
        for lsn, data in rows:
            count += 1
            tag = data[0]
            if tag in _ROW_TAGS:  # the hot path: no full decode
                if txn is None or txn.skip:
                    continue
                change = self._row_change(lsn, tag, data, txn, relations)
                if change.seq < txn.skip_seq:
                    self.stats.skipped_changes += 1
                    continue
                batch.changes.append(change)
                if len(batch.changes) >= self.batch_size:
                    state = Progress(state.end_lsn, txn.begin.final_lsn, txn.seq)
                    batch = self._flush(batch, state)
                continue
            msg = pgoutput.decode(data)
            if msg is None:
                continue
            if isinstance(msg, Begin):
                inflight = msg.final_lsn == state.inflight_lsn
                txn = _Open(msg, self._full_xid(msg.xid), msg.final_lsn < state.end_lsn, state.inflight_seq * inflight)
                continue
            if isinstance(msg, Relation):
                relations[msg.oid] = msg
                batch.relations.append(
                    RelationVersion(
                        lsn,
                        msg.oid,
                        msg.qualified,
                        tuple(c.name for c in msg.columns),
                        tuple(c.type_oid for c in msg.columns),
                    )
                )
                continue
            assert txn is not None, "pgoutput sends changes between Begin and Commit"
            if isinstance(msg, Commit):
                if not txn.skip:
                    if txn.seq:
                        batch.transactions.append(
                            Transaction(
                                txn.begin.xid,
                                txn.full_xid,
                                msg.commit_lsn,
                                msg.end_lsn,
                                msg.commit_time,
                                txn.seq,
                                txn.truncated,
                            )
                        )
                        self.stats.transactions += 1
                    state = Progress(end_lsn=msg.end_lsn)
                txn = None
                if len(batch.changes) >= self.batch_size:
                    batch = self._flush(batch, state)
                continue
            if txn.skip:
                continue
            assert isinstance(msg, Truncate), msg
            for change in self._changes(lsn, msg, txn, relations):
                if change.seq < txn.skip_seq:
                    self.stats.skipped_changes += 1
                    continue
                batch.changes.append(change)
            if len(batch.changes) >= self.batch_size:
                state = Progress(state.end_lsn, txn.begin.final_lsn, txn.seq)
                batch = self._flush(batch, state)
        if batch.changes or batch.transactions or state != self.stored:
            self._flush(batch, state)
        self.wait()
        return count

    def _flush(self, batch: _Batch, state: Progress) -> _Batch:
        """Hands the batch to the writer thread, after the previous write finished: decoding the next batch
        overlaps with storing this one, and writes stay in order, one at a time."""
        self.wait()
        self.pending = self.writer.submit(
            self.sink.write, batch.changes, batch.transactions, batch.relations, self.stored, state
        )
        self.stats.changes += len(batch.changes)
        self.stats.batches += 1
        self.stored = state
        return _Batch()

    def wait(self) -> None:
        """Until the last write is committed; raises what it raised."""
        if self.pending is not None:
            pending, self.pending = self.pending, None
            pending.result()

    def _full_xid(self, xid: int) -> int:
        """The 64-bit id (`pg_current_xact_id()`) of a 32-bit xid, which is at most ~2 billion transactions old."""
        epoch, low = self.current_xid >> 32, self.current_xid & 0xFFFFFFFF
        return ((epoch if xid <= low else epoch - 1) << 32) | xid

    def _key_columns(self, rel: Relation) -> tuple[str, ...]:
        known = self.relation_keys.get(rel.oid)
        if known is not None and known[0] is rel:
            return known[1]
        if rel.oid not in self.keys:
            self.keys[rel.oid] = primary_keys(self.conn, rel.oid)
        names = {c.name for c in rel.columns}
        key = self.keys[rel.oid]
        if not (key and all(k in names for k in key)):
            key = tuple(c.name for c in rel.columns if c.key) if rel.replica_identity != "f" else ()
        self.relation_keys[rel.oid] = (rel, key)
        return key

    def _changes(self, lsn: int, msg: Truncate, txn: _Open, relations: dict[int, Relation]) -> Iterator[Change]:
        begin = txn.begin
        txn.truncated = True
        for oid in msg.oids:
            self.stats.truncates += 1
            seq, txn.seq = txn.seq, txn.seq + 1
            yield Change(
                begin.final_lsn, seq, lsn, begin.xid, txn.full_xid, begin.commit_time,
                relations[oid].qualified, "truncate", None, None, 0, None, (),
            )  # fmt: skip

    def _row_change(self, lsn: int, tag: int, data: bytes, txn: _Open, relations: dict[int, Relation]) -> Change:
        """An insert, update or delete: its key read from the message, the rest kept as it came."""
        rel = relations[int.from_bytes(data[1:5], "big")]
        names, key_idx, width = self._shape(rel)
        body = data[5:]
        old_key = None
        if tag == 73:  # 'I'
            op = "insert"
            key = _pick(tuple_prefix(body, 1, width), key_idx)
        elif tag == 68:  # 'D'
            op = "delete"
            key = _pick(tuple_prefix(body, 1, width), key_idx)
        else:
            op = "update"
            if body[0] == 78:  # 'N': only the new row
                key = _pick(tuple_prefix(body, 1, width), key_idx)
            else:
                old_key = _pick(tuple_prefix(body, 1, width), key_idx)
                key = _pick(tuple_prefix(body, skip_tuple(body, 1) + 1, width), key_idx)
                if key is not None and UNCHANGED in key:
                    key = old_key
                if old_key == key:
                    old_key = None
        begin = txn.begin
        seq, txn.seq = txn.seq, txn.seq + 1
        return Change(
            begin.final_lsn, seq, lsn, begin.xid, txn.full_xid, begin.commit_time, rel.qualified, op, key, old_key,
            rel.oid, body, names,
        )  # fmt: skip

    def _shape(self, rel: Relation) -> tuple[tuple[str, ...], list[int], int]:
        """Column names, the key columns' positions, and how many leading values hold the whole key."""
        known = self.shapes.get(rel.oid)
        if known is not None and known[0] is rel:
            return known[1]
        names = tuple(c.name for c in rel.columns)
        key = self._key_columns(rel)
        idx = [names.index(k) for k in key]
        shape = (names, idx, max(idx) + 1 if idx else 0)
        self.shapes[rel.oid] = (rel, shape)
        return shape


def _pick(values: list, idx: list[int]) -> list | None:
    if not idx:
        return None
    if len(idx) == 1:
        return [values[idx[0]]]
    return [values[i] for i in idx]
