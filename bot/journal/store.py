"""The state store as a journal sink: rows and progress in one transaction, with a compare-and-set on progress."""

import bisect
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from bot.store import Store
from bot.store.journal_models import Journal, JournalChunk, JournalRelation, JournalTransaction
from bot.store.types import utcnow
from restore.errors import RewindError
from restore.journal.chunks import Chunk, stored_chunk
from restore.journal.sync import Progress, RelationVersion, Transaction


class SyncConflict(RewindError):
    """Another process stored changes of this journal meanwhile; this sync stopped without storing anything."""


class StoreSink:
    def __init__(self, store: Store, journal_id: int, owner: str | None = None, claim: timedelta | None = None) -> None:
        self.store, self.journal_id, self.owner, self.claim = store, journal_id, owner, claim
        # Per table oid, the stored relation versions sorted by LSN: (lsn, id, (names, types)).
        self._versions: dict[int, list[tuple[int, int, tuple[list[str], list[int]]]]] | None = None
        self._pending: dict[int, list[tuple[int, int, tuple[list[str], list[int]]]]] = {}

    def progress(self) -> Progress:
        with self.store.transaction() as session:
            j = session.get_one(Journal, self.journal_id)
            return Progress(j.end_lsn, j.inflight_lsn, j.inflight_seq)

    def write(
        self,
        chunks: Sequence[Chunk],
        transactions: Sequence[Transaction],
        relations: Sequence[RelationVersion],
        before: Progress,
        after: Progress,
    ) -> None:
        with self.store.transaction() as session:
            inflight = (
                Journal.inflight_lsn.is_(None)
                if before.inflight_lsn is None
                else Journal.inflight_lsn == before.inflight_lsn
            )
            values: dict[str, object] = {
                "end_lsn": after.end_lsn,
                "inflight_lsn": after.inflight_lsn,
                "inflight_seq": after.inflight_seq,
            }
            if self.owner and self.claim:
                values["claimed_until"] = utcnow() + self.claim
            # The compare-and-set comes first: on Postgres it locks the journal's row, so a second writer waits and
            # then finds the progress moved.
            moved = session.execute(
                update(Journal)
                .where(
                    Journal.id == self.journal_id,
                    Journal.end_lsn == before.end_lsn,
                    inflight,
                    Journal.inflight_seq == before.inflight_seq,
                )
                .values(**values)
            )
            if moved.rowcount != 1:
                raise SyncConflict(
                    "The journal was synced by another process while this one read the slot; nothing was stored by "
                    "this sync. Run rewind journal sync again if changes remain."
                )
            added = self._store_relations(session, relations)
            if chunks:
                session.execute(insert(JournalChunk), [self._chunk_row(c) for c in chunks])
            if transactions:
                session.execute(
                    insert(JournalTransaction),
                    [
                        {
                            "journal_id": self.journal_id,
                            "xid": t.xid,
                            "full_xid": t.full_xid,
                            "commit_lsn": t.commit_lsn,
                            "end_lsn": t.end_lsn,
                            "commit_time": t.commit_time,
                            "changes": t.changes,
                            "truncated": t.truncated,
                        }
                        for t in transactions
                    ],
                )
        # Only once committed do the new versions join the cache.
        for oid, version in added:
            bisect.insort(self._versions.setdefault(oid, []), version)  # type: ignore[union-attr]
        self._pending = {}

    def _chunk_row(self, chunk: Chunk) -> dict[str, object]:
        counts = chunk.counts()
        return {
            "journal_id": self.journal_id,
            "commit_lsn": chunk.commit_lsn,
            "seq": chunk.seq,
            "changes": len(chunk),
            "xid": chunk.xid,
            "full_xid": chunk.full_xid,
            "commit_time": chunk.commit_time,
            "table_name": chunk.table,
            "relation_id": self._relation_id(chunk),
            "inserts": counts["insert"],
            "updates": counts["update"],
            "deletes": counts["delete"],
            "ops": chunk.ops.decode(),
            "keys": chunk.keys_text(),
            "data": chunk.data(),
        }

    def _relation_id(self, chunk: Chunk) -> int | None:
        """The stored relation version with the columns the chunk's bodies follow. Not the one in effect at the
        chunk's LSN: a transaction that committed later may have written the table before that version's message,
        which pgoutput sends when the table is first decoded in commit order."""
        if not chunk.oid:
            return None
        shape = (list(chunk.columns), list(chunk.types))
        versions = self._pending.get(chunk.oid) or self._versions.get(chunk.oid, [])  # type: ignore[union-attr]
        return next((rid for _, rid, known in reversed(versions) if known == shape), None)

    def _store_relations(
        self, session: Session, relations: Sequence[RelationVersion]
    ) -> list[tuple[int, tuple[int, int, tuple[list[str], list[int]]]]]:
        """Stores relation versions whose columns differ from the version in effect at their LSN."""
        if self._versions is None:
            self._versions = {}
            rows = session.execute(
                select(JournalRelation.oid, JournalRelation.lsn, JournalRelation.id, JournalRelation.columns).where(
                    JournalRelation.journal_id == self.journal_id
                )
            )
            for oid, lsn, rid, columns in rows:
                self._versions.setdefault(oid, []).append((lsn, rid, (columns["names"], columns["types"])))
            for versions in self._versions.values():
                versions.sort()
        self._pending: dict[int, list[tuple[int, int, tuple[list[str], list[int]]]]] = {}
        added = []
        for rel in relations:
            shape = (list(rel.columns), list(rel.types))
            versions = self._pending.get(rel.oid) or list(self._versions.get(rel.oid, []))
            at = bisect.bisect_right(versions, (rel.lsn, float("inf"))) - 1
            if at >= 0 and versions[at][2] == shape:
                continue
            row = JournalRelation(
                journal_id=self.journal_id,
                oid=rel.oid,
                lsn=rel.lsn,
                table_name=rel.table,
                columns={"names": shape[0], "types": shape[1]},
            )
            session.add(row)
            session.flush()
            version = (rel.lsn, row.id, shape)
            bisect.insort(versions, version)
            self._pending[rel.oid] = versions
            added.append((rel.oid, version))
        return added


def claim(store: Store, journal_id: int, owner: str, ttl: timedelta, now: datetime | None = None) -> bool:
    """Takes the journal's sync claim unless another owner holds an unexpired one."""
    now = now or utcnow()
    with store.transaction() as session:
        taken = session.execute(
            update(Journal)
            .where(
                Journal.id == journal_id,
                (Journal.claimed_until.is_(None)) | (Journal.claimed_until < now) | (Journal.claimed_by == owner),
            )
            .values(claimed_by=owner, claimed_until=now + ttl)
        )
        return taken.rowcount == 1


def release(store: Store, journal_id: int, owner: str) -> None:
    with store.transaction() as session:
        session.execute(
            update(Journal)
            .where(Journal.id == journal_id, Journal.claimed_by == owner)
            .values(claimed_by=None, claimed_until=None)
        )


def chunk_of(row: Any, columns: dict[int, tuple[str, ...]]) -> Chunk:
    """A stored chunk back, its bodies read with its relation version's column names. A row selected without
    `data` gives a chunk of keys and ops only."""
    return stored_chunk(
        row.commit_lsn, row.seq, row.xid, row.full_xid, row.commit_time, row.table_name,
        columns.get(row.relation_id, ()) if row.relation_id is not None else (), row.ops, row.keys,
        getattr(row, "data", None),
    )  # fmt: skip


def relation_columns(session: Session, journal_id: int) -> dict[int, tuple[str, ...]]:
    """Column names of every relation version of a journal, by version id."""
    rows = session.execute(
        select(JournalRelation.id, JournalRelation.columns).where(JournalRelation.journal_id == journal_id)
    )
    return {rid: tuple(columns["names"]) for rid, columns in rows}
