"""Draining a slot into a journal, exactly once, in bounded batches.

The journal's store (a `Sink`) keeps, in the same transaction as the rows it writes, how far it got: the end LSN of
the last whole transaction stored, and for a transaction stored in several batches (a big one) its commit LSN and
how many of its changes are in. Only after that commit does the slot advance, and only to that end LSN. A sync
killed anywhere re-reads from the slot's position and skips what the store already has:

- a transaction whose commit LSN is before the stored end LSN is stored whole;
- the first `inflight_seq` changes of the in-flight transaction are stored.

Memory stays flat: rows are streamed and written every `batch` changes. Speed comes from doing per change only what
a reader will search on: a change keeps its message body as pgoutput sent it, only its key is read out of it, and
changes are handed to the store in chunks (see `restore.journal.chunks`), not one by one.
"""

import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from operator import itemgetter
from typing import Protocol

import psycopg
from pydantic import BaseModel

from restore.journal import pgoutput
from restore.journal.chunks import Chunk, key_json, value_key_json
from restore.journal.pgoutput import UNCHANGED, Begin, Commit, Relation, Truncate, lsn_text, skip_tuple, tuple_prefix
from restore.journal.slot import (
    JournalError,
    advance,
    confirmed_flush,
    connect,
    drop_reading_copy,
    full_xid_epoch,
    get_changes,
    peek,
    primary_keys,
    reading_copy,
)


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
        chunks: Sequence[Chunk],
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
    chunks: list[Chunk] = field(default_factory=list)
    transactions: list[Transaction] = field(default_factory=list)
    relations: list[RelationVersion] = field(default_factory=list)
    changes: int = 0
    size: int = 0  # the bodies' bytes


# A chunk is closed once it holds this many changes or body bytes (it may pass the bytes by one body).
CHUNK_CHANGES, CHUNK_BYTES = 1000, 1 << 20
# A batch (one store transaction) is written once it holds `batch` changes or this many body bytes.
BATCH_BYTES = 32 << 20
# The reading thread may hold a whole peek ahead of the caller (so the server decodes the next peek while this
# process works through the last one), in lists of FETCH_ROWS rows, up to PREFETCH_BYTES of messages.
FETCH_ROWS = 1000
FIRST_PEEK = 10_000
PREFETCH_BYTES = 64 << 20


def drain(
    dsn: str,
    slot: str,
    publication: str,
    sink: Sink,
    *,
    batch: int = 20000,
    peek_changes: int = 200_000,
) -> SyncStats:
    """Reads every change in the slot into `sink`, then advances the slot past what was stored.

    The changes are read from a temporary copy of the slot, by a thread that stays up to a peek ahead: the server
    decodes the next changes while this process stores the last ones, so a sync takes little longer than the
    decoding itself. Where the server cannot copy the slot, the slot itself is peeked, `peek_changes` at a time."""
    started = time.monotonic()
    stats = SyncStats()
    # Connections: one reads the slot, one answers catalog questions meanwhile, one advances the slot.
    with (
        connect(dsn) as conn,
        connect(dsn) as catalog,
        _Advancer(dsn, slot) as advancer,
        ThreadPoolExecutor(1, "rewind-journal-writer") as writer,
    ):
        stored = sink.progress()
        # A sync killed between the store's commit and the advance left the slot behind: catch it up first.
        advancer.advance(stored.end_lsn)
        reader = _Reader(catalog, sink, stats, batch, writer, advancer.now_and_then)
        confirmed_flush(conn, slot)  # a missing or invalidated slot is said plainly, before any copy is tried
        copy = reading_copy(conn, slot)
        if copy is not None:
            try:
                with _Prefetch(conn, copy, publication, peek_changes) as prefetch:
                    reader.read(prefetch.rows(), stored)
            finally:
                drop_reading_copy(conn, copy)
            stats.peeks = prefetch.peeks
        else:
            while True:
                rows = reader.read(peek(conn, slot, publication, peek_changes), stored)
                stats.peeks += 1
                advancer.advance(reader.stored.end_lsn)
                if rows < peek_changes:  # a peek stops at the first commit past the limit: fewer means none left
                    break
                stored = reader.stored
        advancer.advance(reader.stored.end_lsn)
    stats.end_lsn = lsn_text(reader.stored.end_lsn)
    stats.seconds = round(time.monotonic() - started, 3)
    return stats


class _Advancer:
    """Moves the journal's slot to what the store has committed: at the end of a sync, and every
    `ADVANCE_SECONDS` during a long one (from the writer thread, on its own connection), so production can
    recycle WAL while a big backlog is read."""

    ADVANCE_SECONDS = 10.0

    def __init__(self, dsn: str, slot: str) -> None:
        self.dsn, self.slot = dsn, slot
        self.conn: psycopg.Connection | None = None
        self.done = 0
        self.last = time.monotonic()
        self.lock = threading.Lock()

    def __enter__(self) -> "_Advancer":
        return self

    def __exit__(self, *exc: object) -> None:
        if self.conn is not None:
            self.conn.close()

    def advance(self, lsn: int) -> None:
        with self.lock:
            if lsn <= self.done:
                return
            if self.conn is None:
                self.conn = connect(self.dsn)
            advance(self.conn, self.slot, lsn)
            self.done, self.last = lsn, time.monotonic()

    def now_and_then(self, stored: Progress) -> None:
        """From the writer thread, once a write is committed. A failure here is not the sync's: the store holds the
        changes, and the advance at the end (or the next sync's first) tries again and reports it."""
        if time.monotonic() - self.last >= self.ADVANCE_SECONDS:
            with contextlib.suppress(psycopg.Error, JournalError):
                self.advance(stored.end_lsn)


class RowBuffer:
    """What the reading thread holds ahead of the sync: lists of rows, at most `max_rows` rows and `max_bytes` bytes
    of messages (one list is always let in, so a list larger than the limit still passes, alone)."""

    def __init__(self, max_rows: int, max_bytes: int) -> None:
        self.max_rows, self.max_bytes = max_rows, max_bytes
        self.items: deque[tuple[list[tuple[int, bytes]] | BaseException | None, int, int]] = deque()
        self.rows = self.bytes = 0
        self.room = threading.Condition()

    def put(self, item: list[tuple[int, bytes]] | BaseException | None, stop: threading.Event) -> bool:
        """Waits for room; False if `stop` was set meanwhile (the item is dropped)."""
        rows, size = (len(item), sum(map(len, map(itemgetter(1), item)))) if isinstance(item, list) else (0, 0)
        with self.room:
            while self.items and (self.rows + rows > self.max_rows or self.bytes + size > self.max_bytes):
                if stop.is_set():
                    return False
                self.room.wait(0.1)
            self.items.append((item, rows, size))
            self.rows, self.bytes = self.rows + rows, self.bytes + size
            self.room.notify_all()
        return True

    def get(self) -> list[tuple[int, bytes]] | BaseException | None:
        with self.room:
            while not self.items:
                self.room.wait()
            item, rows, size = self.items.popleft()
            self.rows, self.bytes = self.rows - rows, self.bytes - size
            self.room.notify_all()
        return item


class _Prefetch:
    """Reads a temporary copy of the slot in a thread, consuming it a peek's worth at a time, and hands the rows
    over in lists through a `RowBuffer` of at most a peek's rows and `PREFETCH_BYTES` (so memory stays bounded
    whatever the backlog and however wide the rows)."""

    def __init__(self, conn: psycopg.Connection, slot: str, publication: str, peek_changes: int) -> None:
        self.conn = conn
        self.buffer = RowBuffer(peek_changes, PREFETCH_BYTES)
        self.stop = threading.Event()
        self.peeks = 0
        self.thread = threading.Thread(
            target=self._run, args=(slot, publication, peek_changes), name="rewind-journal-reader", daemon=True
        )

    def __enter__(self) -> "_Prefetch":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.thread.is_alive():  # the caller stopped early (an error): stop the query and the thread
            self.stop.set()
            self.conn.cancel_safe()
            self.thread.join()

    def rows(self) -> Iterator[tuple[int, bytes]]:
        while True:
            item = self.buffer.get()
            if item is None:
                self.thread.join()
                return
            if isinstance(item, BaseException):
                raise item
            yield from item

    def _run(self, slot: str, publication: str, peek_changes: int) -> None:
        # The server sends nothing of a peek until it has decoded all of it: the first peeks are small so that
        # this process has rows to work on early, and each is four times the last, up to `peek_changes`.
        size = min(FIRST_PEEK, peek_changes)
        try:
            while not self.stop.is_set():
                got = 0
                for part in get_changes(self.conn, slot, publication, size, FETCH_ROWS):
                    got += len(part)
                    if not self.buffer.put(part, self.stop):
                        return
                self.peeks += 1
                if got < size:  # a peek stops at the first commit past the limit: fewer means none left
                    break
                size = min(size * 4, peek_changes)
            self.buffer.put(None, self.stop)
        except BaseException as exc:  # handed to the caller, which raises it
            self.buffer.put(exc, self.stop)


_ROW_TAGS = frozenset(b"IUD")  # pgoutput's tags, which are also the chunks' op letters

# Reads a change's key out of its body: the line `restore.journal.chunks` stores (`["42"]`, or new and old key).
KeyReader = Callable[[int, bytes], str]


class _Reader:
    def __init__(
        self,
        conn: psycopg.Connection,
        sink: Sink,
        stats: SyncStats,
        batch: int,
        writer: ThreadPoolExecutor,
        on_stored: Callable[[Progress], None],
    ) -> None:
        self.conn, self.sink, self.stats, self.batch_size = conn, sink, stats, batch
        self.on_stored = on_stored
        self.current_xid = full_xid_epoch(conn)
        self.keys: dict[int, tuple[str, ...]] = {}  # primary keys by table oid, read once per sync
        self.shapes: dict[int, tuple[Relation, _Shape]] = {}
        self.stored = Progress()
        self.writer = writer
        self.pending: Future[None] | None = None

    def read(self, rows: Iterator[tuple[int, bytes]], stored: Progress) -> int:
        """Stores the changes of `rows` (a peek's result, or the whole backlog read from a copy) past `stored`;
        returns how many rows were read."""
        self.stored = stored
        state = stored
        relations: dict[bytes, Relation] = {}  # by the oid's 4 bytes, as row messages carry it
        batch = _Batch()
        txn: _Open | None = None
        chunk: Chunk | None = None
        chunk_oid = b""
        chunk_full_at = 0  # the batch size at which the open chunk is full
        key_of: KeyReader | None = None
        count = 0
        for lsn, data in rows:
            count += 1
            tag = data[0]
            if tag in _ROW_TAGS:  # the hot path: a few appends per change
                if txn is None or txn.skip:
                    continue
                if txn.seq < txn.skip_seq:
                    txn.seq += 1
                    self.stats.skipped_changes += 1
                    continue
                oid = data[1:5]
                if chunk is None or oid != chunk_oid or len(chunk.ops) >= CHUNK_CHANGES or batch.size >= chunk_full_at:
                    chunk, key_of = self._open_chunk(txn, relations[oid], batch)
                    chunk_oid, chunk_full_at = oid, batch.size + CHUNK_BYTES
                body = data[5:]
                chunk.ops.append(tag)
                chunk.keys.append(key_of(tag, body))  # type: ignore[misc]
                chunk.lsns.append(lsn)
                chunk.bodies.append(body)
                txn.seq += 1
                batch.changes += 1
                batch.size += len(body)
                if batch.changes >= self.batch_size or batch.size >= BATCH_BYTES:
                    state = Progress(state.end_lsn, txn.begin.final_lsn, txn.seq)
                    batch, chunk = self._flush(batch, state), None
                continue
            msg = pgoutput.decode(data)
            if msg is None:
                continue
            if isinstance(msg, Begin):
                inflight = msg.final_lsn == state.inflight_lsn
                txn = _Open(msg, self._full_xid(msg.xid), msg.final_lsn < state.end_lsn, state.inflight_seq * inflight)
                chunk = None
                continue
            if isinstance(msg, Relation):
                relations[msg.oid.to_bytes(4, "big")] = msg
                batch.relations.append(
                    RelationVersion(
                        lsn,
                        msg.oid,
                        msg.qualified,
                        tuple(c.name for c in msg.columns),
                        tuple(c.type_oid for c in msg.columns),
                    )
                )
                chunk = None  # the next change may belong to another version of the table
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
                txn = chunk = None
                if batch.changes >= self.batch_size or batch.size >= BATCH_BYTES:
                    batch = self._flush(batch, state)
                continue
            if txn.skip:
                continue
            assert isinstance(msg, Truncate), msg
            self._truncate(lsn, msg, txn, relations, batch)
            chunk = None
        if batch.chunks or batch.transactions or state != self.stored:
            self._flush(batch, state)
        self.wait()
        return count

    def _flush(self, batch: _Batch, state: Progress) -> _Batch:
        """Hands the batch to the writer thread, after the previous write finished: decoding the next batch
        overlaps with storing this one, and writes stay in order, one at a time."""
        self.wait()
        self.pending = self.writer.submit(self._write, batch, self.stored, state)
        self.stats.changes += batch.changes
        self.stats.batches += 1
        self.stored = state
        return _Batch()

    def _write(self, batch: _Batch, before: Progress, after: Progress) -> None:
        self.sink.write(batch.chunks, batch.transactions, batch.relations, before, after)
        self.on_stored(after)

    def wait(self) -> None:
        """Until the last write is committed; raises what it raised."""
        if self.pending is not None:
            pending, self.pending = self.pending, None
            pending.result()

    def _full_xid(self, xid: int) -> int:
        """The 64-bit id (`pg_current_xact_id()`) of a 32-bit xid, which is at most ~2 billion transactions old."""
        epoch, low = self.current_xid >> 32, self.current_xid & 0xFFFFFFFF
        return ((epoch if xid <= low else epoch - 1) << 32) | xid

    def _open_chunk(self, txn: _Open, rel: Relation, batch: _Batch) -> tuple[Chunk, KeyReader]:
        names, types, key_of = self._shape(rel)
        begin = txn.begin
        chunk = Chunk(
            begin.final_lsn, txn.seq, begin.xid, txn.full_xid, begin.commit_time, rel.qualified, rel.oid, names, types
        )
        batch.chunks.append(chunk)
        return chunk, key_of

    def _truncate(self, lsn: int, msg: Truncate, txn: _Open, relations: dict[bytes, Relation], batch: _Batch) -> None:
        """A TRUNCATE is one change per table, with no rows: they were never in the WAL."""
        begin = txn.begin
        txn.truncated = True
        for oid in msg.oids:
            if txn.seq < txn.skip_seq:
                txn.seq += 1
                self.stats.skipped_changes += 1
                continue
            self.stats.truncates += 1
            rel = relations[oid.to_bytes(4, "big")]
            chunk = Chunk(begin.final_lsn, txn.seq, begin.xid, txn.full_xid, begin.commit_time, rel.qualified, 0, ())
            chunk.ops.append(ord("T"))
            chunk.keys.append("")
            chunk.lsns.append(lsn)
            chunk.bodies.append(b"")
            batch.chunks.append(chunk)
            batch.changes += 1
            txn.seq += 1

    def _key_columns(self, rel: Relation) -> tuple[str, ...]:
        if rel.oid not in self.keys:
            self.keys[rel.oid] = primary_keys(self.conn, rel.oid)
        names = {c.name for c in rel.columns}
        key = self.keys[rel.oid]
        if not (key and all(k in names for k in key)):
            key = tuple(c.name for c in rel.columns if c.key) if rel.replica_identity != "f" else ()
        return key

    def _shape(self, rel: Relation) -> "_Shape":
        """Column names and types, and how to read the key of a change to this version of the table."""
        known = self.shapes.get(rel.oid)
        if known is not None and known[0] is rel:
            return known[1]
        names = tuple(c.name for c in rel.columns)
        idx = [names.index(k) for k in self._key_columns(rel)]
        shape = (names, tuple(c.type_oid for c in rel.columns), key_reader(idx))
        self.shapes[rel.oid] = (rel, shape)
        return shape


_Shape = tuple[tuple[str, ...], tuple[int, ...], KeyReader]


def key_reader(idx: list[int]) -> KeyReader:
    """How to read the key columns at positions `idx` from a change's body: the first column alone (the common
    case) without building the tuple's value list."""
    if not idx:
        return _no_key
    if idx == [0]:
        return _first_column_key
    width = max(idx) + 1

    def read(tag: int, body: bytes) -> str:
        return _key_line(tag, body, lambda pos: _pick(tuple_prefix(body, pos, width), idx))

    return read


def _no_key(tag: int, body: bytes) -> str:
    return ""


def _first_column_key(tag: int, body: bytes) -> str:
    """`_key_line` for a key that is the first column, written out: it runs for nearly every change."""
    if tag != 85 or body[0] == 78:
        value = _first_value(body, 1)
        return "" if value is UNCHANGED else value_key_json(value)
    old = _first_value(body, 1)
    new = _first_value(body, skip_tuple(body, 1) + 1)
    if new is UNCHANGED:
        new = old
    return value_key_json(new) if new == old else f"{value_key_json(new)}\t{value_key_json(old)}"


def _key_line(tag: int, body: bytes, key_at: Callable[[int], list]) -> str:
    """The key after the change (before it, for a delete); for an update that changed the key, a tab and the key
    before. `key_at(pos)` reads the key of the TupleData at `pos`. A key column pgoutput did not send (a TOASTed
    value an update left as it was) is the old row's; with no old row to take it from, the key is unknown ("")."""
    if tag != 85 or body[0] == 78:  # not an update, or an update that sent only the new row ('N')
        key = key_at(1)
        return "" if any(v is UNCHANGED for v in key) else _json(key)
    old = key_at(1)
    new = [o if n is UNCHANGED else n for n, o in zip(key_at(skip_tuple(body, 1) + 1), old, strict=True)]
    return _json(new) if new == old else f"{_json(new)}\t{_json(old)}"


def _first_value(body: bytes, pos: int) -> object:
    """The first value of the TupleData at `pos`: text, None (NULL) or UNCHANGED."""
    kind = body[pos + 2]
    if kind == 116:  # 't'
        length = int.from_bytes(body[pos + 3 : pos + 7], "big")
        return body[pos + 7 : pos + 7 + length].decode()
    return None if kind == 110 else UNCHANGED


def _json(key: list) -> str:
    return value_key_json(key[0]) if len(key) == 1 else key_json(key) or ""


def _pick(values: list, idx: list[int]) -> list:
    if len(idx) == 1:
        return [values[idx[0]]]
    return [values[i] for i in idx]
