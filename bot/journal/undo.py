"""`rewind undo`: picks the journal's transactions (by xid, or by time and table) and plans their undo on live."""

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel
from sqlalchemy import or_, select

from bot.journal.service import _table_filter, get_journal, target_dsn
from bot.journal.store import chunk_of, relation_columns
from bot.store import Store
from bot.store.journal_models import JournalChunk, JournalRelation, JournalTransaction
from restore.errors import RewindError
from restore.journal.chunks import Change
from restore.journal.undo import Conflict, Truncation, UndoPlan, plan_undo
from restore.targets import Target, TargetRole, mask_dsn, resolve_target

XID_32 = 1 << 32


class UndoSelectionError(RewindError):
    """Transactions that the journal does not have, or a selection that names none."""


class UndoResult(BaseModel):
    """`rewind undo --json`."""

    journal: str
    live: str
    xids: list[int]
    counts: dict[str, dict[str, int]]
    conflicts: list[Conflict]
    truncated: list[Truncation]
    unkeyed_changes: int
    notes: list[str]
    out: str | None = None
    undo: str | None = None


@dataclass
class JournalUndo:
    plan: UndoPlan
    result: UndoResult

    def write(self, out: Path, redo: Path | None = None) -> None:
        self.plan.plan.write(out, redo)


def plan_journal_undo(
    store: Store,
    targets: Mapping[str, Target],
    name: str | None,
    *,
    xids: Sequence[int] = (),
    since: datetime | None = None,
    until: datetime | None = None,
    tables: Sequence[str] = (),
    live: str | None = None,
    command: str = "",
) -> JournalUndo:
    """Plans the undo of the chosen transactions. An xid is the 32-bit one `journal log` lists, or the 64-bit value
    `pg_current_xact_id()` returned inside the transaction."""
    journal = get_journal(store, name)
    if not xids and not (since and until):
        raise UndoSelectionError("Choose what to undo: --xid X [--xid Y ...], or --since T --until T.")
    live_target = resolve_target(live, targets, TargetRole.PRODUCTION) if live else None
    live_dsn = live_target.dsn if live_target else target_dsn(journal, targets)
    with store.transaction() as session:
        chosen_tables = _table_filter(session, journal.id, tables)
        query = select(JournalTransaction).where(JournalTransaction.journal_id == journal.id)
        if xids:
            small = [x for x in xids if x < XID_32]
            full = [x for x in xids if x >= XID_32]
            query = query.where(or_(JournalTransaction.xid.in_(small), JournalTransaction.full_xid.in_(full)))
        else:
            query = query.where(JournalTransaction.commit_time >= since, JournalTransaction.commit_time <= until)
        txns = list(session.scalars(query.order_by(JournalTransaction.commit_lsn)))
        if xids:
            found = {t.xid for t in txns} | {t.full_xid for t in txns}
            missing = [x for x in xids if x not in found]
            if missing:
                raise UndoSelectionError(
                    f"The journal {journal.name!r} has no transaction {', '.join(map(str, missing))}: "
                    "list them with rewind journal log (sync first if it is recent)."
                )
        if not txns:
            raise UndoSelectionError(f"The journal {journal.name!r} has no transaction in that time range.")
        renames, last_columns = _renames(session, journal.id)
    lsns = {t.commit_lsn for t in txns}
    first = min(lsns)
    selected = _changes(store, journal.id, first, chosen_tables, lambda lsn: lsn in lsns)
    # Later changes are only looked at for the rows they touch: their bodies are not read.
    later = _changes(store, journal.id, first, [], lambda lsn: lsn not in lsns, bodies=False)
    plan = plan_undo(
        live_dsn,
        selected,
        later,
        renames=renames,
        last_columns=last_columns,
        title=f"of journal {journal.name}",
        command=command,
    )
    result = UndoResult(
        journal=journal.name,
        live=live_target.name if live_target else mask_dsn(journal.target),
        xids=[t.xid for t in txns],
        **plan.report.model_dump(),
    )
    return JournalUndo(plan, result)


def _changes(
    store: Store,
    journal_id: int,
    from_lsn: int,
    tables: Sequence[str],
    keep: Callable[[int], bool],
    *,
    bodies: bool = True,
) -> Iterator[Change]:
    """Changes from `from_lsn` on, in commit order, read a page of chunks at a time so memory stays bounded.
    Without `bodies`, only which rows changed is read (LSNs are 0 and the rows unknown)."""
    wanted = [c for c in JournalChunk.__table__.c if bodies or c.name != "data"]
    last = (from_lsn - 1, 0)
    page = 50
    columns: dict[int, tuple[str, ...]] | None = None
    while True:
        with store.transaction() as session:
            query = select(*wanted).where(
                JournalChunk.journal_id == journal_id,
                or_(
                    JournalChunk.commit_lsn > last[0],
                    (JournalChunk.commit_lsn == last[0]) & (JournalChunk.seq > last[1]),
                ),
            )
            if tables:
                query = query.where(JournalChunk.table_name.in_(tables))
            order = query.order_by(JournalChunk.commit_lsn, JournalChunk.seq).limit(page)
            rows = session.connection().execute(order).all()
            if columns is None:
                columns = relation_columns(session, journal_id)
        for row in rows:
            if keep(row.commit_lsn):
                yield from chunk_of(row, columns).changes()
        if len(rows) < page:
            return
        last = (rows[-1].commit_lsn, rows[-1].seq)


def _renames(
    session: object, journal_id: int
) -> tuple[dict[str, dict[str, str]], dict[str, tuple[list[str], list[int]]]]:
    """Column renames seen in the relation versions (same types in the same places, another name), mapping every
    earlier name to the last one seen; and the last columns seen per table, which undo matches against live."""
    versions = session.execute(  # type: ignore[attr-defined]
        select(JournalRelation.oid, JournalRelation.table_name, JournalRelation.columns)
        .where(JournalRelation.journal_id == journal_id)
        .order_by(JournalRelation.oid, JournalRelation.lsn, JournalRelation.id)
    ).all()
    renames: dict[str, dict[str, str]] = {}
    previous: dict[int, dict] = {}
    for oid, table, columns in versions:
        before = previous.get(oid)
        previous[oid] = columns
        if before is None or before["types"] != columns["types"]:
            continue
        moved = {old: new for old, new in zip(before["names"], columns["names"], strict=True) if old != new}
        if moved:
            mapping = renames.setdefault(table, {})
            for earlier, current in list(mapping.items()):
                mapping[earlier] = moved.get(current, current)
            mapping.update({old: new for old, new in moved.items() if old not in mapping})
    last = {table: (columns["names"], columns["types"]) for _, table, columns in versions}
    return renames, last
