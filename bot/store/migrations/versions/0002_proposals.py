"""proposals, approvals and the append-only audit log

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

import bot.store.types

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "proposals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("target", sa.String(length=128), nullable=False),
        sa.Column("sql_text", sa.Text(), nullable=False),
        sa.Column("sql_sha256", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=18), nullable=False),
        sa.Column("proposer_id", sa.String(length=64), nullable=False),
        sa.Column("proposer_name", sa.String(length=128), nullable=True),
        sa.Column("approvals_required", sa.Integer(), nullable=False),
        sa.Column("eligible", sa.JSON(), nullable=True),
        sa.Column("dry_run", sa.JSON(), nullable=True),
        sa.Column("plan", sa.JSON(), nullable=True),
        sa.Column("channel_id", sa.String(length=64), nullable=False),
        sa.Column("message_ts", sa.String(length=32), nullable=True),
        sa.Column("created_at", bot.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("remind_at", bot.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", bot.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("reminded_at", bot.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("decided_at", bot.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("executing_since", bot.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("xid", sa.BigInteger(), nullable=True),
        sa.Column("finished_at", bot.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(["incident_id"], ["incidents.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("incident_id", "number", name="uq_proposals_number"),
    )
    with op.batch_alter_table("proposals", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_proposals_incident_id"), ["incident_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_proposals_message_ts"), ["message_ts"], unique=False)
        batch_op.create_index(batch_op.f("ix_proposals_status"), ["status"], unique=False)

    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", bot.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("proposal_id", sa.Integer(), nullable=False),
        sa.Column("sql_sha256", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=128), nullable=False),
        sa.Column("proposer_id", sa.String(length=64), nullable=False),
        sa.Column("approvers", sa.JSON(), nullable=False),
        sa.Column("row_counts", sa.JSON(), nullable=True),
        sa.Column("duration_s", sa.Float(), nullable=True),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_log_incident_id"), ["incident_id"], unique=False)

    op.create_table(
        "proposal_approvals",
        sa.Column("proposal_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("sql_sha256", sa.String(length=64), nullable=False),
        sa.Column("approved_at", bot.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["proposal_id"], ["proposals.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("proposal_id", "user_id"),
    )
    _append_only("audit_log")


def _append_only(table: str) -> None:
    """The audit log refuses UPDATE and DELETE, whoever connects to the store."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION rewind_append_only() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION '% is append-only', TG_TABLE_NAME; END $$"
        )
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION rewind_append_only()"
        )
        return
    for action in ("UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
            f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log")
        op.execute("DROP FUNCTION IF EXISTS rewind_append_only()")
    op.drop_table("proposal_approvals")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_log_incident_id"))

    op.drop_table("audit_log")
    with op.batch_alter_table("proposals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_proposals_status"))
        batch_op.drop_index(batch_op.f("ix_proposals_message_ts"))
        batch_op.drop_index(batch_op.f("ix_proposals_incident_id"))

    op.drop_table("proposals")
