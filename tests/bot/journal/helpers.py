"""Shared set-up for the journal's store-side tests."""

import psycopg

from restore.targets import Target, TargetRole

SCHEMA = """
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, note text);
CREATE TABLE products (id int PRIMARY KEY, name text NOT NULL, price numeric(10,2), blob text,
                       customer_id int REFERENCES customers(id) ON DELETE CASCADE);
ALTER TABLE customers REPLICA IDENTITY FULL;
ALTER TABLE products REPLICA IDENTITY FULL;
"""


def targets_for(dsn: str) -> dict[str, Target]:
    return {"prod": Target(name="prod", dsn=dsn, role=TargetRole.PRODUCTION)}


def run(dsn: str, *statements: str) -> list[int]:
    """Runs each statement in its own transaction; returns each transaction's 32-bit xid."""
    xids = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        for statement in statements:
            with conn.transaction():
                conn.execute(statement)
                xids.append(int(conn.execute("SELECT txid_current() % 4294967296").fetchone()[0]))
    return xids


def rows(dsn: str, query: str) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(query).fetchall()
