"""SQL corpus for read-only queries: who refuses each statement, the parser, the server, or nobody ("allowed").

Importable so that other layers (the Slack `/inc query` path) can replay it. Load SETUP_SQL into an empty database
first: the "server" and "allowed" cases need its objects.
"""

from dataclasses import dataclass
from typing import Literal

RefusedBy = Literal["parser", "server", "allowed"]

SETUP_SQL = """
CREATE TABLE accounts (id int PRIMARY KEY, name text NOT NULL, balance numeric NOT NULL DEFAULT 0);
CREATE TABLE audit (id serial PRIMARY KEY, note text);
CREATE SEQUENCE s;
INSERT INTO accounts SELECT g, 'acct ' || g, g * 10 FROM generate_series(1, 500) g;
-- A VOLATILE function that writes: the parser cannot see inside it, the READ ONLY transaction refuses it.
CREATE FUNCTION sneaky_write(n int) RETURNS int LANGUAGE plpgsql VOLATILE AS
  $$ BEGIN INSERT INTO audit(note) VALUES ('written by sneaky_write'); RETURN n; END $$;
CREATE FUNCTION sneaky_delete() RETURNS int LANGUAGE sql VOLATILE AS $$ DELETE FROM accounts RETURNING 1 $$;
CREATE FUNCTION harmless(n int) RETURNS int LANGUAGE sql IMMUTABLE AS $$ SELECT n * 2 $$;
"""


@dataclass(frozen=True)
class GuardCase:
    sql: str
    refused_by: RefusedBy
    why: str


CORPUS: tuple[GuardCase, ...] = (
    # Legitimate reads.
    GuardCase("SELECT 1", "allowed", "constant"),
    GuardCase("select id, name from accounts where id < 10 order by id", "allowed", "plain select"),
    GuardCase("TABLE accounts", "allowed", "TABLE shorthand"),
    GuardCase("VALUES (1, 'a'), (2, 'b')", "allowed", "VALUES"),
    GuardCase("SHOW server_version", "allowed", "SHOW"),
    GuardCase("EXPLAIN SELECT * FROM accounts WHERE id = 1", "allowed", "EXPLAIN without ANALYZE"),
    GuardCase("EXPLAIN (COSTS OFF, VERBOSE) SELECT count(*) FROM accounts", "allowed", "EXPLAIN with options"),
    GuardCase("WITH a AS (SELECT * FROM accounts) SELECT count(*) FROM a", "allowed", "read-only CTE"),
    GuardCase(
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 5) SELECT * FROM r",
        "allowed",
        "recursive CTE",
    ),
    GuardCase("SELECT harmless(21)", "allowed", "user function that only reads"),
    GuardCase("SELECT currval('s') IS NULL FROM accounts WHERE false", "allowed", "currval reads"),
    GuardCase("select 1; select 2", "allowed", "two reads"),
    GuardCase("SELECT now(), current_user, version()", "allowed", "session functions"),
    GuardCase("SELECT * FROM accounts a JOIN LATERAL (SELECT a.id * 2 AS x) l ON true LIMIT 3", "allowed", "lateral"),
    GuardCase("SELECT count(*) FILTER (WHERE balance > 100) FROM accounts", "allowed", "aggregate filter"),
    GuardCase("SELECT id FROM accounts UNION SELECT id FROM audit", "allowed", "set operation"),
    GuardCase("select 'delete from accounts' as looks_scary", "allowed", "a write only inside a string literal"),
    GuardCase("SELECT current_setting('statement_timeout')", "allowed", "reading a setting"),
    # Writes disguised as reads, refused by the parser.
    GuardCase("WITH d AS (DELETE FROM accounts RETURNING *) SELECT count(*) FROM d", "parser", "data-modifying CTE"),
    GuardCase(
        "SELECT * FROM (WITH u AS (UPDATE accounts SET balance = 0 RETURNING id) SELECT * FROM u) q",
        "parser",
        "data-modifying CTE nested in a subquery",
    ),
    GuardCase(
        "WITH i AS (INSERT INTO audit(note) VALUES ('x') RETURNING id) SELECT * FROM i", "parser", "INSERT in CTE"
    ),
    GuardCase("SELECT * INTO stolen FROM accounts", "parser", "SELECT INTO"),
    GuardCase("SELECT * FROM accounts FOR UPDATE", "parser", "row locks"),
    GuardCase("SELECT * FROM accounts FOR SHARE SKIP LOCKED", "parser", "row locks"),
    GuardCase("SELECT * FROM (SELECT * FROM accounts FOR NO KEY UPDATE) s", "parser", "row locks in a subquery"),
    GuardCase("select nextval('s')", "parser", "nextval advances a sequence"),
    GuardCase("select pg_catalog.setval('s', 42)", "parser", "qualified setval"),
    GuardCase("select pg_terminate_backend(1)", "parser", "kills a backend"),
    GuardCase("select pg_cancel_backend(pid) from pg_stat_activity", "parser", "cancels queries"),
    GuardCase("select set_config('statement_timeout', '0', false)", "parser", "changes a setting"),
    GuardCase("select pg_advisory_lock(1)", "parser", "takes an advisory lock"),
    GuardCase("select pg_sleep(60)", "parser", "ties up a connection"),
    GuardCase("select pg_read_file('/etc/passwd')", "parser", "reads server files"),
    GuardCase("select lo_import('/etc/passwd')", "parser", "large object import"),
    GuardCase("select pg_notify('ch', 'x')", "parser", "sends a notification"),
    GuardCase("select txid_current()", "parser", "assigns a transaction id"),
    GuardCase("select query_to_xml('delete from accounts', true, false, '')", "parser", "runs SQL text"),
    GuardCase("select pg_reload_conf()", "parser", "reloads configuration"),
    GuardCase("select * from accounts where id = (select pg_switch_wal()::text::int)", "parser", "nested call"),
    GuardCase("EXPLAIN ANALYZE DELETE FROM accounts", "parser", "EXPLAIN ANALYZE executes"),
    GuardCase("EXPLAIN (ANALYZE) SELECT 1", "parser", "EXPLAIN ANALYZE executes"),
    GuardCase("EXPLAIN DELETE FROM accounts", "parser", "explains a write"),
    GuardCase("select 1; delete from accounts", "parser", "a write after a read"),
    GuardCase("DELETE FROM accounts", "parser", "DELETE"),
    GuardCase("UPDATE accounts SET balance = 0", "parser", "UPDATE"),
    GuardCase("INSERT INTO audit(note) VALUES ('x')", "parser", "INSERT"),
    GuardCase("MERGE INTO accounts a USING audit b ON a.id = b.id WHEN MATCHED THEN DELETE", "parser", "MERGE"),
    GuardCase("TRUNCATE accounts", "parser", "TRUNCATE"),
    GuardCase("DROP TABLE accounts", "parser", "DDL"),
    GuardCase("CREATE TABLE x AS SELECT 1", "parser", "CREATE TABLE AS"),
    GuardCase("LOCK TABLE accounts", "parser", "LOCK"),
    GuardCase("NOTIFY ch", "parser", "NOTIFY"),
    GuardCase("LISTEN ch", "parser", "LISTEN"),
    GuardCase("PREPARE p AS SELECT 1", "parser", "PREPARE"),
    GuardCase("EXECUTE p", "parser", "EXECUTE"),
    GuardCase("SET statement_timeout = 0", "parser", "SET"),
    GuardCase("RESET ALL", "parser", "RESET"),
    GuardCase("COPY accounts TO STDOUT", "parser", "COPY"),
    GuardCase("DO $$ BEGIN DELETE FROM accounts; END $$", "parser", "DO block"),
    GuardCase("CALL some_procedure()", "parser", "CALL"),
    GuardCase("DISCARD ALL", "parser", "DISCARD"),
    GuardCase("COMMIT; DELETE FROM accounts", "parser", "escaping the transaction"),
    GuardCase("BEGIN READ WRITE", "parser", "transaction control"),
    GuardCase("VACUUM accounts", "parser", "maintenance"),
    GuardCase("SELEC 1", "parser", "does not parse"),
    GuardCase("", "parser", "empty"),
    # Writes the parser cannot see: user-defined VOLATILE functions. The READ ONLY transaction refuses them.
    GuardCase("SELECT sneaky_write(1)", "server", "plpgsql function that inserts"),
    GuardCase("SELECT * FROM accounts WHERE id = sneaky_write(1)", "server", "writing function in WHERE"),
    GuardCase("SELECT sneaky_delete()", "server", "SQL function that deletes"),
)
