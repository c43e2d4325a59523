"""Facts about a provisioned backup database, kept in the database itself so any process can read them.

The dump's own timestamp is stored as the database's comment; every "after the backup" question
(gap, plan comments) is asked against it.
"""

import json
from datetime import datetime

import psycopg
from psycopg import sql

_KEY = "rewind_backup_time"


def record_backup_time(conn: psycopg.Connection, when: datetime) -> None:
    """Store `when` (aware) on the connected database. Needs ownership of the database."""
    dbname = conn.info.dbname
    comment = json.dumps({_KEY: when.isoformat()})
    conn.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(dbname), sql.Literal(comment)))


def backup_time_of(conn: psycopg.Connection) -> datetime | None:
    """The backup time recorded on the connected database, or None if it was not provisioned by Rewind."""
    row = conn.execute(
        "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = current_database()"
    ).fetchone()
    if not row or not row[0]:
        return None
    try:
        value = json.loads(row[0]).get(_KEY)
    except (ValueError, AttributeError):
        return None
    return datetime.fromisoformat(value) if value else None
