"""The state store as a journal sink: rows and progress in one transaction, with a compare-and-set on progress."""

import bisect
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from bot.store import Store
from bot.store.journal_models import Journal, JournalRelation, JournalTransaction
from bot.store.types import utcnow
from restore.errors import RewindError
from restore.journal.sync import Change, Progress, RelationVersion, Transaction


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
        changes: Sequence[Change],
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
            if changes:
                self._insert_changes(session, changes)
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

    def _insert_changes(self, session: Session, changes: Sequence[Change]) -> None:
        """The hot path of a sync: COPY on Postgres, one executemany of plain tuples on SQLite. Values are what the
        ORM would bind (UTC times, bytes), written without its per-row processing."""
        dbapi = session.connection().connection.dbapi_connection
        assert dbapi is not None
        jid = self.journal_id
        relation = self._relation_id
        if self.store.is_postgres:
            with dbapi.cursor() as cur, cur.copy(_COPY_CHANGES) as copy:  # type: ignore[attr-defined]
                for c in changes:
                    copy.write_row(
                        (jid, c.commit_lsn, c.seq, c.lsn, c.xid, c.full_xid, c.commit_time, c.table, c.op,
                         key_json(c.key), key_json(c.old_key), relation(c), c.body)
                    )  # fmt: skip
            return
        times: dict[datetime, str] = {}
        rows = []
        for c in changes:
            when = times.get(c.commit_time)
            if when is None:
                when = times[c.commit_time] = c.commit_time.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
            rows.append(
                (jid, c.commit_lsn, c.seq, c.lsn, c.xid, c.full_xid, when, c.table, c.op, key_json(c.key),
                 key_json(c.old_key), relation(c), c.body)
            )  # fmt: skip
        cur = dbapi.cursor()
        try:
            cur.executemany(_INSERT_CHANGES, rows)
        finally:
            cur.close()

    def _relation_id(self, change: Change) -> int | None:
        """The relation version a change's values belong to: the last one stored at or before its LSN."""
        if change.body is None:
            return None
        versions = self._pending.get(change.oid) or self._versions.get(change.oid, [])  # type: ignore[union-attr]
        at = bisect.bisect_right(versions, (change.lsn, float("inf"))) - 1
        return versions[at][1] if at >= 0 else None

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


_COLUMNS = (
    "journal_id, commit_lsn, seq, lsn, xid, full_xid, commit_time, table_name, op, row_key, old_key, relation_id, data"
)
_COPY_CHANGES = f"COPY journal_changes ({_COLUMNS}) FROM STDIN"
_INSERT_CHANGES = f"INSERT INTO journal_changes ({_COLUMNS}) VALUES ({', '.join('?' * 13)})"


def key_json(key: Sequence[str | None] | None) -> str | None:
    """A row key as stored and searched: a compact JSON array of the key columns' text values."""
    if key is None:
        return None
    if len(key) == 1 and key[0] is not None and key[0].isalnum() and key[0].isascii():
        return '["' + key[0] + '"]'  # the common case (an integer or plain code), without the encoder
    return json.dumps(list(key), separators=(",", ":"))


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


def key_from_json(text: str | None) -> list[str | None] | None:
    """`key_json` reversed; the common one-plain-value case without the decoder."""
    if text is None:
        return None
    if text.startswith('["') and text.endswith('"]') and '"' not in text[2:-2] and "\\" not in text:
        return [text[2:-2]]
    return json.loads(text)


def stored_change(row: Any, columns: dict[int, tuple[str, ...]]) -> Change:
    """A journal row back as a `Change`, its values decoded with its relation version's column names."""
    return Change(
        row.commit_lsn, row.seq, row.lsn, row.xid, row.full_xid, row.commit_time, row.table_name, row.op,
        key_from_json(row.row_key), key_from_json(row.old_key), 0, row.data,
        columns.get(row.relation_id, ()) if row.relation_id is not None else (),
    )  # fmt: skip


def relation_columns(session: Session, journal_id: int) -> dict[int, tuple[str, ...]]:
    """Column names of every relation version of a journal, by version id."""
    rows = session.execute(
        select(JournalRelation.id, JournalRelation.columns).where(JournalRelation.journal_id == journal_id)
    )
    return {rid: tuple(columns["names"]) for rid, columns in rows}
