"""the audit log records agent tool calls: actor, tool and arguments; the proposal columns become optional

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_OPTIONAL = (
    ("incident_id", sa.Integer()),
    ("proposal_id", sa.Integer()),
    ("sql_sha256", sa.String(length=64)),
    ("target", sa.String(length=128)),
    ("proposer_id", sa.String(length=64)),
    ("approvers", sa.JSON()),
)
_SQLITE_ACTIONS = ("UPDATE", "DELETE")


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:  # batch mode rebuilds the table, and dropping a table drops its triggers: set them again after
        _drop_sqlite_triggers()
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        for name, type_ in _OPTIONAL:
            batch_op.alter_column(name, existing_type=type_, nullable=True)
        batch_op.add_column(sa.Column("actor", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("tool", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("arguments", sa.JSON(), nullable=True))
        batch_op.create_index(batch_op.f("ix_audit_log_actor"), ["actor"], unique=False)
    if sqlite:
        _create_sqlite_triggers()


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        _drop_sqlite_triggers()
    else:  # tool-call rows have no proposal: they cannot stay once the columns are required again
        op.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")
    op.execute("DELETE FROM audit_log WHERE tool IS NOT NULL")
    if not sqlite:
        op.execute("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_log_actor"))
        batch_op.drop_column("arguments")
        batch_op.drop_column("tool")
        batch_op.drop_column("actor")
        for name, type_ in _OPTIONAL:
            batch_op.alter_column(name, existing_type=type_, nullable=False)
    if sqlite:
        _create_sqlite_triggers()


def _drop_sqlite_triggers() -> None:
    for action in _SQLITE_ACTIONS:
        op.execute(f"DROP TRIGGER IF EXISTS audit_log_no_{action.lower()}")


def _create_sqlite_triggers() -> None:
    for action in _SQLITE_ACTIONS:
        op.execute(
            f"CREATE TRIGGER audit_log_no_{action.lower()} BEFORE {action} ON audit_log "
            "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END"
        )
