"""The journal's tables: journals (one per captured target), their transactions, changes and relation versions.

Exactly-once lives here: a journal's progress (`end_lsn`, `inflight_lsn`, `inflight_seq`) is updated in the same
transaction as the rows, with a compare-and-set on its previous value, so two processes can never both store the
same changes; and a chunk is unique by its first change's place (journal, commit LSN, position in the transaction),
which refuses the same chunk stored twice.
"""

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bot.store.models import Base
from bot.store.types import utcnow

# 64-bit ids on Postgres; SQLite only auto-increments an INTEGER PRIMARY KEY (which is 64-bit there anyway).
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Journal(Base):
    __tablename__ = "journals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    target: Mapped[str] = mapped_column(Text)  # a configured target's name, or the DSN given to --target
    slot_name: Mapped[str] = mapped_column(String(64))
    publication: Mapped[str] = mapped_column(String(64))
    tables: Mapped[dict[str, Any] | None]  # {"tables": [...]}; None: every table
    start_lsn: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    stopped_at: Mapped[datetime | None]
    end_lsn: Mapped[int] = mapped_column(BigInteger, default=0)
    inflight_lsn: Mapped[int | None] = mapped_column(BigInteger)
    inflight_seq: Mapped[int] = mapped_column(Integer, default=0)
    last_sync_at: Mapped[datetime | None]
    last_sync: Mapped[dict[str, Any] | None]  # the last sync's figures
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    claimed_until: Mapped[datetime | None]
    last_alert_at: Mapped[datetime | None]  # the last WAL-retention warning, so it is not repeated every sync


class JournalTransaction(Base):
    __tablename__ = "journal_transactions"
    __table_args__ = (
        UniqueConstraint("journal_id", "commit_lsn", name="uq_journal_transactions_lsn"),
        Index("ix_journal_transactions_time", "journal_id", "commit_time"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    journal_id: Mapped[int] = mapped_column(ForeignKey("journals.id", ondelete="CASCADE"))
    xid: Mapped[int] = mapped_column(BigInteger)  # 32-bit, as the WAL and `journal log` show it
    full_xid: Mapped[int] = mapped_column(BigInteger)  # 64-bit, as pg_current_xact_id() returned it
    commit_lsn: Mapped[int] = mapped_column(BigInteger)
    end_lsn: Mapped[int] = mapped_column(BigInteger)
    commit_time: Mapped[datetime]
    changes: Mapped[int] = mapped_column(Integer)
    truncated: Mapped[bool] = mapped_column(Boolean, default=False)


class JournalChunk(Base):
    """Consecutive row changes to one table in one transaction (see `restore.journal.chunks` for the layout of
    `ops`, `keys` and `data`). Its identity is its first change's place in the WAL: (journal, commit LSN, position
    in the transaction). A sync writes one row per chunk, not per change, which is what makes it fast."""

    __tablename__ = "journal_chunks"
    __table_args__ = (
        Index("ix_journal_chunks_table", "journal_id", "table_name", "commit_lsn"),
        Index("ix_journal_chunks_time", "journal_id", "commit_time"),
    )

    journal_id: Mapped[int] = mapped_column(ForeignKey("journals.id", ondelete="CASCADE"), primary_key=True)
    commit_lsn: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    changes: Mapped[int] = mapped_column(Integer)
    xid: Mapped[int] = mapped_column(BigInteger)
    full_xid: Mapped[int] = mapped_column(BigInteger)
    commit_time: Mapped[datetime]
    table_name: Mapped[str] = mapped_column(String(256))
    relation_id: Mapped[int | None] = mapped_column(Integer)  # the column names the bodies' values belong to
    inserts: Mapped[int] = mapped_column(Integer)
    updates: Mapped[int] = mapped_column(Integer)
    deletes: Mapped[int] = mapped_column(Integer)
    ops: Mapped[str] = mapped_column(Text)  # a letter per change: I, U, D, T(runcate)
    keys: Mapped[str] = mapped_column(Text)  # a line per change: its key as JSON, and the key before if it changed
    data: Mapped[bytes] = mapped_column(LargeBinary)  # LSNs, body lengths, pgoutput's bodies; zlib-compressed


class JournalRelation(Base):
    """A table's columns as the WAL described them from `lsn` on: how renames and dropped columns are read."""

    __tablename__ = "journal_relations"
    __table_args__ = (Index("ix_journal_relations_oid", "journal_id", "oid", "lsn"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    journal_id: Mapped[int] = mapped_column(ForeignKey("journals.id", ondelete="CASCADE"))
    oid: Mapped[int] = mapped_column(BigInteger)
    lsn: Mapped[int] = mapped_column(BigInteger)
    table_name: Mapped[str] = mapped_column(String(256))
    columns: Mapped[dict[str, Any]]  # {"names": [...], "types": [...]}
