"""the change journal: journals, transactions, changes, relation versions

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

import bot.store.types

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    utc = bot.store.types.UTCDateTime(timezone=True)
    op.create_table(
        "journals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("slot_name", sa.String(length=64), nullable=False),
        sa.Column("publication", sa.String(length=64), nullable=False),
        sa.Column("tables", sa.JSON(), nullable=True),
        sa.Column("start_lsn", sa.BigInteger(), nullable=False),
        sa.Column("created_at", utc, nullable=False),
        sa.Column("stopped_at", utc, nullable=True),
        sa.Column("end_lsn", sa.BigInteger(), nullable=False),
        sa.Column("inflight_lsn", sa.BigInteger(), nullable=True),
        sa.Column("inflight_seq", sa.Integer(), nullable=False),
        sa.Column("last_sync_at", utc, nullable=True),
        sa.Column("last_sync", sa.JSON(), nullable=True),
        sa.Column("claimed_by", sa.String(length=128), nullable=True),
        sa.Column("claimed_until", utc, nullable=True),
        sa.Column("last_alert_at", utc, nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "journal_transactions",
        sa.Column("id", BigId, nullable=False),
        sa.Column("journal_id", sa.Integer(), nullable=False),
        sa.Column("xid", sa.BigInteger(), nullable=False),
        sa.Column("full_xid", sa.BigInteger(), nullable=False),
        sa.Column("commit_lsn", sa.BigInteger(), nullable=False),
        sa.Column("end_lsn", sa.BigInteger(), nullable=False),
        sa.Column("commit_time", utc, nullable=False),
        sa.Column("changes", sa.Integer(), nullable=False),
        sa.Column("truncated", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["journal_id"], ["journals.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("journal_id", "commit_lsn", name="uq_journal_transactions_lsn"),
    )
    op.create_index("ix_journal_transactions_time", "journal_transactions", ["journal_id", "commit_time"])
    op.create_table(
        "journal_changes",
        sa.Column("journal_id", sa.Integer(), nullable=False),
        sa.Column("commit_lsn", sa.BigInteger(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("lsn", sa.BigInteger(), nullable=False),
        sa.Column("xid", sa.BigInteger(), nullable=False),
        sa.Column("full_xid", sa.BigInteger(), nullable=False),
        sa.Column("commit_time", utc, nullable=False),
        sa.Column("table_name", sa.String(length=256), nullable=False),
        sa.Column("op", sa.String(length=8), nullable=False),
        sa.Column("row_key", sa.Text(), nullable=True),
        sa.Column("old_key", sa.Text(), nullable=True),
        sa.Column("relation_id", sa.Integer(), nullable=True),
        sa.Column("data", sa.LargeBinary(), nullable=True),
        sa.ForeignKeyConstraint(["journal_id"], ["journals.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("journal_id", "commit_lsn", "seq"),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_journal_changes_row", "journal_changes", ["journal_id", "table_name", "row_key"])
    op.create_table(
        "journal_relations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("journal_id", sa.Integer(), nullable=False),
        sa.Column("oid", sa.BigInteger(), nullable=False),
        sa.Column("lsn", sa.BigInteger(), nullable=False),
        sa.Column("table_name", sa.String(length=256), nullable=False),
        sa.Column("columns", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["journal_id"], ["journals.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_journal_relations_oid", "journal_relations", ["journal_id", "oid", "lsn"])


def downgrade() -> None:
    op.drop_index("ix_journal_relations_oid", table_name="journal_relations")
    op.drop_table("journal_relations")
    op.drop_index("ix_journal_changes_row", table_name="journal_changes")
    op.drop_table("journal_changes")
    op.drop_index("ix_journal_transactions_time", table_name="journal_transactions")
    op.drop_table("journal_transactions")
    op.drop_table("journals")
