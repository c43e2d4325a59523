"""the journal keeps row changes in chunks, one row per run of changes to a table in a transaction

A sync wrote one row per change, and the store's insert was most of its time. Existing changes move to chunks of one
change each, so a journal recorded before this revision reads as it did. A downgrade drops the recorded changes.

Revision ID: 0005
Revises: 0004
"""

import zlib

import sqlalchemy as sa
from alembic import op

import bot.store.types

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_LETTERS = {"insert": "I", "update": "U", "delete": "D", "truncate": "T"}
_PAGE = 1000


def upgrade() -> None:
    utc = bot.store.types.UTCDateTime(timezone=True)
    chunks = op.create_table(
        "journal_chunks",
        sa.Column("journal_id", sa.Integer(), nullable=False),
        sa.Column("commit_lsn", sa.BigInteger(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("changes", sa.Integer(), nullable=False),
        sa.Column("xid", sa.BigInteger(), nullable=False),
        sa.Column("full_xid", sa.BigInteger(), nullable=False),
        sa.Column("commit_time", utc, nullable=False),
        sa.Column("table_name", sa.String(length=256), nullable=False),
        sa.Column("relation_id", sa.Integer(), nullable=True),
        sa.Column("inserts", sa.Integer(), nullable=False),
        sa.Column("updates", sa.Integer(), nullable=False),
        sa.Column("deletes", sa.Integer(), nullable=False),
        sa.Column("ops", sa.Text(), nullable=False),
        sa.Column("keys", sa.Text(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["journal_id"], ["journals.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("journal_id", "commit_lsn", "seq"),
    )
    op.create_index("ix_journal_chunks_table", "journal_chunks", ["journal_id", "table_name", "commit_lsn"])
    op.create_index("ix_journal_chunks_time", "journal_chunks", ["journal_id", "commit_time"])
    _store_data_as_is()
    _move_changes_to_chunks(chunks)
    op.drop_index("ix_journal_changes_row", table_name="journal_changes")
    op.drop_table("journal_changes")


def _store_data_as_is() -> None:
    """A chunk's data is compressed already (zlib): Postgres need not try again."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE journal_chunks ALTER COLUMN data SET STORAGE EXTERNAL")


def _move_changes_to_chunks(chunks: sa.Table) -> None:
    """Each stored change becomes a chunk of one (see restore.journal.chunks for the layout), a page at a time so a
    big journal does not have to fit in memory."""
    bind = op.get_bind()
    changes = sa.Table("journal_changes", sa.MetaData(), *_change_columns())
    order = (changes.c.journal_id, changes.c.commit_lsn, changes.c.seq)
    after: tuple[int, int, int] | None = None
    while True:
        page = sa.select(changes).order_by(*order).limit(_PAGE)
        if after is not None:
            page = page.where(sa.tuple_(*order) > sa.tuple_(*after))
        rows = bind.execute(page).mappings().all()
        if rows:
            bind.execute(chunks.insert(), [_chunk_of(row) for row in rows])
        if len(rows) < _PAGE:
            return
        after = (rows[-1]["journal_id"], rows[-1]["commit_lsn"], rows[-1]["seq"])


def _chunk_of(row: sa.RowMapping) -> dict[str, object]:
    body = row["data"] or b""
    letter = _LETTERS[row["op"]]
    line = row["row_key"] or ""
    if row["old_key"]:
        line += "\t" + row["old_key"]
    header = row["lsn"].to_bytes(8, "little", signed=True) + len(body).to_bytes(4, "little")
    return {
        **{k: row[k] for k in ("journal_id", "commit_lsn", "seq", "xid", "full_xid", "commit_time")},
        **{k: row[k] for k in ("table_name", "relation_id")},
        "changes": 1,
        "inserts": int(letter == "I"),
        "updates": int(letter == "U"),
        "deletes": int(letter == "D"),
        "ops": letter,
        "keys": f"\n{line}\n",
        "data": zlib.compress(header + body, 1),
    }


def _change_columns() -> list[sa.schema.SchemaItem]:
    """journal_changes as revision 0003 made it."""
    utc = bot.store.types.UTCDateTime(timezone=True)
    return [
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
    ]


def downgrade() -> None:
    op.create_table("journal_changes", *_change_columns(), sqlite_with_rowid=False)
    op.create_index("ix_journal_changes_row", "journal_changes", ["journal_id", "table_name", "row_key"])
    op.drop_index("ix_journal_chunks_time", table_name="journal_chunks")
    op.drop_index("ix_journal_chunks_table", table_name="journal_chunks")
    op.drop_table("journal_chunks")
