"""Cluster dumps (pg_dumpall, Supabase db_cluster backups) restored whole or by table, in private clusters.

Roles are global to a cluster, so these replicas live in private throwaway clusters: what a restore creates or
leaves alone is then exactly what the test sees.
"""

import contextlib
import gzip
import json
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from restore.cluster import ThrowawayCluster, find_pg_bindir
from restore.clusterdump import _StatementEnd, restore_cluster_dump, time_from_file_name
from restore.dump import DumpFormat, detect_format
from restore.errors import DumpError
from restore.meta import backup_time_of
from restore.replica import Replica, destroy, provision
from tests.restore.conftest import cli
from tests.restore.supabase_dump import USER_TABLES, user_id, write_cluster_dump

pytestmark = pytest.mark.usefixtures("state_dir")
ROWS = 40
SUPABASE_NAME = "db_cluster-22-01-2026@04-00-00.backup"


@contextlib.contextmanager
def replica_of(dump: Path, **kwargs: object) -> Iterator[Replica]:
    replica = provision(dump, **kwargs)  # type: ignore[arg-type]
    try:
        yield replica
    finally:
        destroy(replica.name)


def _query(dsn: str, query: str) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(query).fetchall()


def _counts(dsn: str, tables: list[str]) -> dict[str, int]:
    return {t: _query(dsn, f"SELECT count(*) FROM {t}")[0][0] for t in tables}


def _policies(dsn: str) -> dict[str, str]:
    return dict(
        _query(dsn, "SELECT polrelid::regclass::text || ' ' || polname, pg_get_expr(polqual, polrelid) FROM pg_policy")
    )


def _grants(dsn: str, table: str) -> set[tuple[str, str]]:
    query = f"""
        SELECT grantee::regrole::text, privilege_type
        FROM pg_class c, aclexplode(c.relacl) a WHERE c.oid = '{table}'::regclass
    """
    return set(_query(dsn, query))


@pytest.mark.parametrize("packed", ["gzip", "plain"])
def test_whole_cluster_dump_restores_the_supabase_database(tmp_path: Path, packed: str) -> None:
    # Detected by content: the plain one has a name that says nothing.
    name = SUPABASE_NAME if packed == "gzip" else "cluster-backup.bin"
    dump = write_cluster_dump(tmp_path / name, ROWS, gz=packed == "gzip")
    assert detect_format(dump) is (DumpFormat.PLAIN_GZIP if packed == "gzip" else DumpFormat.PLAIN)
    with replica_of(dump, name="whole") as replica:
        dsn = replica.dsn
        assert replica.source_database == "postgres"
        assert replica.tables == USER_TABLES  # not analytics.page_views, not the vault's config table
        assert _counts(dsn, USER_TABLES) == {
            "auth.users": ROWS,
            "public.audit_log": 3 * ROWS,
            "public.profiles": ROWS,
            "public.todos": 2 * ROWS,
        }
        # Roles: created NOLOGIN when missing; postgres (the cluster's superuser) left as it was.
        assert set(replica.roles_created) == {
            "anon", "authenticated", "authenticator", "dashboard_user", "service_role", "supabase_admin",
            "supabase_auth_admin",
        }  # fmt: skip
        roles = dict(_query(dsn, "SELECT rolname, ARRAY[rolcanlogin, rolsuper] FROM pg_roles WHERE rolname !~ '^pg_'"))
        assert roles["postgres"] == [True, True]
        assert roles["supabase_admin"] == [False, False] and roles["anon"] == [False, False]
        assert _query(dsn, "SELECT pg_has_role('authenticator', 'anon', 'MEMBER')") == [(True,)]
        # RLS, policies using auth.uid(), grants to the Supabase roles, the trigger, the extension it has.
        assert _query(dsn, "SELECT relname FROM pg_class WHERE relrowsecurity ORDER BY 1") == [
            ("profiles",),
            ("todos",),
        ]
        assert _policies(dsn) == {
            "todos Users see their own todos": "(auth.uid() = user_id)",
            "profiles Profiles are public": "true",
        }
        assert {("anon", "SELECT"), ("authenticated", "UPDATE"), ("service_role", "DELETE")} <= _grants(
            dsn, "public.todos"
        )
        assert ("dashboard_user", "SELECT") in _grants(dsn, "auth.users")
        assert _query(dsn, "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal") == [("todos_set_updated_at",)]
        assert ("pgcrypto",) in _query(dsn, "SELECT extname FROM pg_extension")
        assert _query(dsn, "SELECT nextval('public.todos_id_seq')") == [(2 * ROWS + 1,)]
        # Each skip is named: the missing extensions, and what needed them.
        assert replica.skipped_extensions == ["pg_graphql", "supabase_vault"]
        skipped = {(item.kind, item.name) for item in replica.skipped}
        assert skipped == {
            ("EXTENSION", "pg_graphql"),
            ("EXTENSION", "supabase_vault"),
            ("COMMENT", "EXTENSION pg_graphql"),
            ("VIEW", "public.gql_version"),
            ("TABLE DATA", "vault.secrets"),
        }
        assert not _query(dsn, "SELECT 1 FROM pg_database WHERE datname = 'analytics'")
        if packed == "gzip":
            assert replica.backup_time == datetime(2026, 1, 22, 4, 0, 0, tzinfo=UTC)
            assert replica.backup_time_source == "file-name"
            with psycopg.connect(dsn) as conn:
                assert backup_time_of(conn) == replica.backup_time
        else:
            assert replica.backup_time is None and replica.backup_time_source is None


@pytest.mark.parametrize("packed", ["gzip", "plain"])
def test_table_loads_that_table_and_the_tables_its_foreign_keys_need(tmp_path: Path, packed: str) -> None:
    dump = write_cluster_dump(tmp_path / SUPABASE_NAME, ROWS, gz=packed == "gzip")
    with replica_of(dump, tables=["todos"]) as replica:
        dsn = replica.dsn
        # todos -> profiles -> auth.users: the whole chain, complete; nothing else (no audit_log, no view).
        assert replica.tables == ["auth.users", "public.profiles", "public.todos"]
        query = (
            "SELECT relnamespace::regnamespace || '.' || relname FROM pg_class WHERE relkind = 'r' "
            "AND relnamespace::regnamespace::text NOT IN ('pg_catalog', 'information_schema')"
        )
        tables = _query(dsn, query)
        assert sorted(t for (t,) in tables) == ["auth.users", "public.profiles", "public.todos"]
        assert _counts(dsn, replica.tables) == {"auth.users": ROWS, "public.profiles": ROWS, "public.todos": 2 * ROWS}
        constraints = {
            name
            for (name,) in _query(
                dsn,
                "SELECT conname FROM pg_constraint WHERE contype IN ('p', 'f') "
                "AND connamespace <> 'pg_catalog'::regnamespace",
            )
        }
        assert constraints == {"users_pkey", "profiles_pkey", "todos_pkey", "profiles_id_fkey", "todos_user_id_fkey"}
        assert set(_policies(dsn)) == {"todos Users see their own todos", "profiles Profiles are public"}
        assert {("anon", "SELECT"), ("authenticated", "INSERT")} <= _grants(dsn, "public.todos")
        assert ("dashboard_user", "SELECT") in _grants(dsn, "auth.users")
        assert _query(dsn, "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal") == [("todos_set_updated_at",)]
        assert _query(dsn, "SELECT nextval('public.todos_id_seq')") == [(2 * ROWS + 1,)]
        # auth.uid() works as a policy needs it: the owner of a row sees it under RLS as `authenticated`.
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("SET ROLE authenticated")
            conn.execute("SELECT set_config('request.jwt.claim.sub', %s, false)", (user_id(3),))
            assert conn.execute("SELECT count(*) FROM public.todos").fetchone() == (2,)
        assert [i.name for i in replica.skipped if i.kind == "EXTENSION"] == ["pg_graphql", "supabase_vault"]
        assert not any(i.kind in ("TABLE DATA", "VIEW") for i in replica.skipped)  # never tried: not asked for


def test_database_option_and_the_dump_header_time(tmp_path: Path) -> None:
    dump = write_cluster_dump(tmp_path / "all.sql.gz", 10, gz=True, started="2026-01-22 05:00:12 CET")
    with replica_of(dump, database="analytics") as replica:
        assert replica.tables == ["public.page_views"]
        assert _counts(replica.dsn, replica.tables) == {"public.page_views": 10}
        assert replica.backup_time == datetime(2026, 1, 22, 4, 0, 12, tzinfo=UTC)
        assert replica.backup_time_source == "dump-header"
    with pytest.raises(DumpError, match=r"no database 'shop'.*template1, analytics, postgres"):
        provision(dump, database="shop")


def test_triggers_are_off_while_data_loads(tmp_path: Path) -> None:
    dump = write_cluster_dump(tmp_path / "c.sql", 5)
    with ThrowawayCluster() as cluster:
        load = restore_cluster_dump(dump, DumpFormat.PLAIN, cluster.dsn, tables=["public.audit_log"])
        assert load.triggers_off and load.tables == ["public.audit_log"]


def test_supabase_file_name_time() -> None:
    assert time_from_file_name(Path("db_cluster-22-01-2026@04-00-00.backup.gz")) == datetime(2026, 1, 22, 4, tzinfo=UTC)
    assert time_from_file_name(Path("db_cluster-31-02-2026@04-00-00.backup")) is None
    assert time_from_file_name(Path("backup.sql")) is None


def test_a_single_database_dump_refuses_database(tmp_path: Path) -> None:
    plain = tmp_path / "one.sql"
    plain.write_text("--\n-- PostgreSQL database dump\n--\n\nCREATE TABLE t (id int);\n")
    with pytest.raises(DumpError, match="--database applies to cluster dumps"):
        provision(plain, database="postgres")


def test_real_pg_dumpall_output_defaults_to_the_database_with_tables(tmp_path: Path) -> None:
    """pg_dumpall of a cluster whose tables live in `app` (postgres has none): the default finds `app`."""
    with ThrowawayCluster() as source:
        with psycopg.connect(source.dsn, autocommit=True) as conn:
            conn.execute("CREATE ROLE app_reader NOLOGIN")
            conn.execute("CREATE DATABASE app")
        app = source.dsn.rsplit("/", 1)[0] + "/app"
        with psycopg.connect(app, autocommit=True) as conn:
            conn.execute(
                "CREATE TABLE accounts (id int PRIMARY KEY, name text);"
                "CREATE TABLE invoices (id serial PRIMARY KEY, account_id int REFERENCES accounts, "
                "  created_at timestamptz DEFAULT now());"
                "CREATE TABLE notes (id int PRIMARY KEY, body text);"
                "INSERT INTO accounts SELECT g, 'a' || g FROM generate_series(1, 30) g;"
                "INSERT INTO invoices (account_id) SELECT 1 + g % 30 FROM generate_series(1, 90) g;"
                "INSERT INTO notes SELECT g, E'tab\\there' FROM generate_series(1, 5) g;"
                "GRANT SELECT ON invoices TO app_reader;"
            )
        dumpall = str(find_pg_bindir("pg_dumpall") / "pg_dumpall")
        text = subprocess.run([dumpall, "-d", source.dsn, "-v"], check=True, capture_output=True).stdout
    dump = tmp_path / "cluster.sql.gz"
    dump.write_bytes(gzip.compress(text))
    with replica_of(dump) as whole:
        assert whole.source_database == "app"
        assert _counts(whole.dsn, whole.tables) == {"public.accounts": 30, "public.invoices": 90, "public.notes": 5}
        assert whole.backup_time_source == "dump-header" and whole.backup_time is not None
        assert whole.roles_created == ["app_reader"]
    with replica_of(dump, tables=["invoices"]) as some:
        assert some.tables == ["public.accounts", "public.invoices"]
        assert ("app_reader", "SELECT") in _grants(some.dsn, "public.invoices")
        assert _query(some.dsn, "SELECT nextval('invoices_id_seq')") == [(91,)]


def test_cli_json_says_the_time_source_and_names_each_skip(tmp_path: Path) -> None:
    dump = write_cluster_dump(tmp_path / SUPABASE_NAME, 5, gz=True)
    code, out = cli("replica", "up", str(dump), "--table", "public.profiles", "--name", "sb", "--json")
    try:
        assert code == 0
        shown = json.loads(out)
        assert shown["backup_time_source"] == "file-name" and shown["source_database"] == "postgres"
        assert shown["tables"] == ["auth.users", "public.profiles"]
        assert shown["skipped_extensions"] == ["pg_graphql", "supabase_vault"]
        assert {"kind": "EXTENSION", "name": "pg_graphql", "reason": "not available on this server"} in shown["skipped"]
        code, text = cli("replica", "ls")
        assert "sb" in text
    finally:
        cli("replica", "down", "sb")
    code, text = cli("replica", "up", str(dump), "--name", "sb2")
    try:
        assert "extensions this server lacks, skipped: pg_graphql, supabase_vault" in text
        assert "skipped VIEW public.gql_version: function graphql.get_schema_version() does not exist" in text
        assert "(from the file name)" in text
    finally:
        cli("replica", "down", "sb2")


@pytest.mark.parametrize(
    ("lines", "ends"),
    [
        (["SET x = 1;\n"], [True]),
        (["CREATE FUNCTION f() RETURNS int AS $$\n", "  select 1; -- not the end\n", "$$;\n"], [False, False, True]),
        (["AS $_$ it's $$ inside; $_$\n", "LANGUAGE sql;\n"], [False, True]),
        (["SELECT E'it\\'s; still' || 'a '';'\n", "  ;\n"], [False, True]),
        (["SELECT 1 /* a /* nested ; */ comment ; */\n", ";\n"], [False, True]),
        (['CREATE TABLE "we;ird" (a$b$ int);\n'], [True]),
        (["SELECT 1; SELECT 2\n", ";\n"], [False, True]),
        (["SELECT 'multi\n", "line;';\n"], [False, True]),
    ],
)
def test_statement_ends_are_found_across_quotes_and_comments(lines: list[str], ends: list[bool]) -> None:
    scanner = _StatementEnd()
    assert [scanner.feed(line) for line in lines] == ends
