"""The backup time survives in the database itself."""

from datetime import UTC, datetime

import psycopg

from restore.meta import backup_time_of, record_backup_time


def test_backup_time_round_trips(pg_dsn: str) -> None:
    when = datetime(2026, 1, 22, 4, 0, 12, tzinfo=UTC)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        assert backup_time_of(conn) is None
        record_backup_time(conn, when)
    with psycopg.connect(pg_dsn) as conn:
        assert backup_time_of(conn) == when
