"""Real Postgres for the tests: REWIND_TEST_DATABASE_URL when set, else a throwaway cluster for the session."""

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo


class PgServer:
    """A server the tests may create and drop scratch databases on."""

    def __init__(self, admin_dsn: str) -> None:
        self.admin_dsn = admin_dsn

    def dsn_for(self, dbname: str) -> str:
        params = conninfo_to_dict(self.admin_dsn)
        params["dbname"] = dbname
        return make_conninfo(**params)

    def url_for(self, dbname: str) -> str:
        """An SQLAlchemy URL (psycopg 3) for one database of this server."""
        p = conninfo_to_dict(self.dsn_for(dbname))
        auth = p.get("user", "postgres") + (f":{p['password']}" if p.get("password") else "")
        return f"postgresql+psycopg://{auth}@{p.get('host', '127.0.0.1')}:{p.get('port', 5432)}/{dbname}"

    def create_database(self, prefix: str = "t") -> str:
        name = f"rw_{prefix}_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return name

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    @contextmanager
    def database(self, prefix: str = "t") -> Iterator[str]:
        """A fresh database's DSN, dropped afterwards."""
        name = self.create_database(prefix)
        try:
            yield self.dsn_for(name)
        finally:
            self.drop_database(name)


def test_database_url() -> str | None:
    return os.environ.get("REWIND_TEST_DATABASE_URL") or None
