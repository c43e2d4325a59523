"""Replicas from real pg_dump output of every format, whole or by table, on a server or in a private cluster."""

import contextlib
import gzip
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from restore.cluster import find_pg_bindir
from restore.dump import DumpFormat, detect_format, parse_dump_time
from restore.errors import DumpError
from restore.meta import backup_time_of
from restore.replica import destroy, list_replicas, provision
from tests.pg import PgServer
from tests.restore.conftest import cli

SOURCE_SQL = """
CREATE SCHEMA shop;
CREATE TYPE shop.status AS ENUM ('new', 'paid');
CREATE TABLE shop.customers (id serial PRIMARY KEY, email text NOT NULL UNIQUE);
CREATE TABLE shop.orders (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id int NOT NULL REFERENCES shop.customers(id),
    status shop.status NOT NULL DEFAULT 'new',
    note text
);
CREATE INDEX orders_customer_idx ON shop.orders (customer_id);
CREATE TABLE shop.items (id int PRIMARY KEY, order_id bigint NOT NULL REFERENCES shop.orders(id), sku text);
CREATE TABLE public.audit (id int PRIMARY KEY, customer_id int REFERENCES shop.customers(id));
CREATE VIEW shop.order_view AS SELECT o.id, c.email FROM shop.orders o JOIN shop.customers c ON c.id = o.customer_id;
CREATE FUNCTION shop.all_items() RETURNS SETOF shop.items LANGUAGE sql AS $$ SELECT * FROM shop.items $$;
INSERT INTO shop.customers (email) SELECT 'c' || g || '@x' FROM generate_series(1, 50) g;
INSERT INTO shop.orders (customer_id, note) SELECT 1 + g % 50, E'line\\n-- Name: x; Type: TABLE; Schema: y; Owner: z'
    FROM generate_series(1, 200) g;
INSERT INTO shop.items SELECT g, 1 + g % 200, 'sku' || g FROM generate_series(1, 300) g;
INSERT INTO public.audit VALUES (1, 1);
"""
ROWS = {"shop.customers": 50, "shop.orders": 200, "shop.items": 300, "public.audit": 1}
FORMATS = ["custom", "directory", "tar", "plain", "plain.gz"]


pytestmark = pytest.mark.usefixtures("state_dir")


@pytest.fixture(scope="module")
def dumps(pg: PgServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """The source database dumped once in every format (plain with --verbose, so it carries `-- Started on`)."""
    folder = tmp_path_factory.mktemp("dumps")
    with pg.database("src") as dsn:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(SOURCE_SQL)
        pg_dump = str(find_pg_bindir("pg_dump") / "pg_dump")
        paths = {
            "custom": folder / "shop.dump",
            "directory": folder / "shop.dir",
            "tar": folder / "shop.tar",
            "plain": folder / "shop.sql",
        }
        for fmt, path in paths.items():
            flags = {"custom": ["-Fc"], "directory": ["-Fd"], "tar": ["-Ft"], "plain": ["-Fp", "--verbose"]}[fmt]
            subprocess.run([pg_dump, *flags, "-f", str(path), "-d", dsn], check=True, capture_output=True)
        paths["plain.gz"] = folder / "shop.sql.gz"
        with paths["plain"].open("rb") as raw, gzip.open(paths["plain.gz"], "wb") as packed:
            shutil.copyfileobj(raw, packed)
        yield paths


@contextlib.contextmanager
def replica_on(pg: PgServer, dump: Path, **kwargs: object) -> Iterator[object]:
    replica = provision(dump, server_dsn=pg.admin_dsn, **kwargs)  # type: ignore[arg-type]
    try:
        yield replica
    finally:
        destroy(replica.name)


def _counts(dsn: str, tables: list[str]) -> dict[str, int]:
    with psycopg.connect(dsn) as conn:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}  # type: ignore[index]


def _constraints(dsn: str) -> set[str]:
    with psycopg.connect(dsn) as conn:
        query = "SELECT conname FROM pg_constraint WHERE connamespace = 'shop'::regnamespace"
        return {row[0] for row in conn.execute(query)}


@pytest.mark.parametrize("fmt", FORMATS)
def test_detects_format(dumps: dict[str, Path], fmt: str) -> None:
    expected = DumpFormat.PLAIN_GZIP if fmt == "plain.gz" else DumpFormat(fmt)
    assert detect_format(dumps[fmt]) is expected


def test_rejects_what_is_not_a_dump(tmp_path: Path) -> None:
    (tmp_path / "binary").write_bytes(b"\x00\x01\x02garbage")
    with pytest.raises(DumpError, match="not a pg_dump"):
        detect_format(tmp_path / "binary")
    with pytest.raises(DumpError, match=r"toc\.dat"):
        detect_format(tmp_path)
    with pytest.raises(DumpError, match="No dump"):
        detect_format(tmp_path / "missing")


@pytest.mark.parametrize("fmt", FORMATS)
def test_full_replica_from_every_format(pg: PgServer, dumps: dict[str, Path], fmt: str) -> None:
    with replica_on(pg, dumps[fmt], jobs=2) as replica:
        assert sorted(replica.tables) == sorted(ROWS)
        assert _counts(replica.dsn, list(ROWS)) == ROWS
        assert replica.backup_time is not None
        assert abs(datetime.now(UTC) - replica.backup_time) < timedelta(minutes=10)
        with psycopg.connect(replica.dsn) as conn:
            assert backup_time_of(conn) == replica.backup_time
            assert conn.execute("SELECT count(*) FROM shop.order_view").fetchone() == (200,)


@pytest.mark.parametrize("fmt", FORMATS)
def test_table_subset_keeps_keys_and_fks_among_them(pg: PgServer, dumps: dict[str, Path], fmt: str) -> None:
    with replica_on(pg, dumps[fmt], tables=["orders", "shop.customers"]) as replica:
        assert replica.tables == ["shop.customers", "shop.orders"]
        assert _counts(replica.dsn, replica.tables) == {t: ROWS[t] for t in replica.tables}
        assert _constraints(replica.dsn) == {
            "customers_pkey",
            "customers_email_key",
            "orders_pkey",
            "orders_customer_id_fkey",
        }
        with psycopg.connect(replica.dsn) as conn:
            query = "SELECT relname FROM pg_class WHERE relnamespace = 'shop'::regnamespace"
            present = {row[0] for row in conn.execute(query)}
            assert "orders_customer_idx" in present
            assert not {"items", "audit", "order_view"} & present
            # Sequences and defaults came along: new rows get fresh ids after the restored ones.
            new_id = conn.execute("INSERT INTO shop.customers (email) VALUES ('new@x') RETURNING id").fetchone()
            assert new_id == (51,)
            order = conn.execute("INSERT INTO shop.orders (customer_id) VALUES (51) RETURNING id, status")
            assert order.fetchone() == (201, "new")
            with pytest.raises(psycopg.errors.ForeignKeyViolation):
                conn.execute("INSERT INTO shop.orders (customer_id) VALUES (999)")


def test_unknown_table_is_refused_with_the_tables_available(pg: PgServer, dumps: dict[str, Path]) -> None:
    with pytest.raises(DumpError, match=r"no table 'nope'.*shop\.orders"):
        provision(dumps["custom"], server_dsn=pg.admin_dsn, tables=["nope"], name="bad-table")
    assert list_replicas() == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-22 04:00:12 UTC", datetime(2026, 1, 22, 4, 0, 12, tzinfo=UTC)),
        ("2026-01-22 13:00:12 JST", datetime(2026, 1, 22, 4, 0, 12, tzinfo=UTC)),
        ("2026-01-21 23:00:12 EST", datetime(2026, 1, 22, 4, 0, 12, tzinfo=UTC)),
        ("2026-01-22 07:00:12 +03", datetime(2026, 1, 22, 4, 0, 12, tzinfo=UTC)),
        ("2026-01-22 09:30:12 +0530", datetime(2026, 1, 22, 4, 0, 12, tzinfo=UTC)),
        ("2026-01-22 04:00:12 Mars Standard Time", None),
        ("yesterday", None),
    ],
)
def test_dump_time_is_aware_utc(text: str, expected: datetime | None) -> None:
    assert parse_dump_time(text) == expected


def test_plain_dump_time_in_another_zone(pg: PgServer, tmp_path: Path) -> None:
    with pg.database("tz") as dsn:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE t (id int PRIMARY KEY)")
        dump = tmp_path / "tz.sql"
        pg_dump = str(find_pg_bindir("pg_dump") / "pg_dump")
        env = {**os.environ, "TZ": "Asia/Tokyo"}
        subprocess.run([pg_dump, "--verbose", "-f", str(dump), "-d", dsn], check=True, capture_output=True, env=env)
    assert " JST" in dump.read_text()
    with replica_on(pg, dump) as replica:
        assert replica.backup_time is not None
        assert abs(datetime.now(UTC) - replica.backup_time) < timedelta(minutes=10)


def test_private_cluster_as_root_survives_the_command_until_down(dumps: dict[str, Path], state_dir: Path) -> None:
    """No --server: a throwaway cluster (run as an unprivileged user when we are root) keeps serving the replica."""
    messages: list[str] = []
    replica = provision(dumps["custom"], tables=["customers"], name="private", progress=messages.append)
    record = json.loads((state_dir / "replicas" / "private.json").read_text())
    cluster_dir = Path(record["cluster_dir"])
    try:
        assert any("private cluster" in m for m in messages)
        assert (cluster_dir / "data" / "postmaster.pid").exists()
        if os.geteuid() == 0:
            assert (cluster_dir / "data").stat().st_uid != 0
        assert _counts(replica.dsn, ["shop.customers"]) == {"shop.customers": 50}
        assert [r.name for r in list_replicas()] == ["private"]
    finally:
        destroy("private")
    assert not cluster_dir.exists()
    assert list_replicas() == []


def test_cli_up_json_ls_query_down_masks_the_password(pg: PgServer, dumps: dict[str, Path]) -> None:
    params = psycopg.conninfo.conninfo_to_dict(pg.admin_dsn)
    params["password"] = "s3cret-pw"  # trust auth ignores it; it must never be printed
    server = psycopg.conninfo.make_conninfo(**params)
    code, out = cli(
        "replica",
        "up",
        str(dumps["custom"]),
        "--server",
        server,
        "--name",
        "cli",
        "--json",
        "--backup-time",
        "2026-01-22T05:00:12+01:00",
    )
    assert code == 0 and "s3cret" not in out
    shown = json.loads(out)
    assert set(shown) == {"name", "dsn", "backup_time", "tables", "seconds", "backup_time_source", "source_database",
                          "roles_created", "skipped_extensions", "skipped"}  # fmt: skip
    assert shown["backup_time_source"] == "given" and shown["skipped"] == []
    assert shown["name"] == "cli" and "***" in shown["dsn"]
    assert datetime.fromisoformat(shown["backup_time"]) == datetime(2026, 1, 22, 4, 0, 12, tzinfo=UTC)
    try:
        code, listing = cli("replica", "ls", "--json")
        assert [item["name"] for item in json.loads(listing)] == ["cli"] and "s3cret" not in listing
        code, result = cli("query", "cli", "SELECT count(*) AS n FROM shop.items", "--json")
        assert json.loads(result)["rows"] == [[300]]
    finally:
        assert cli("replica", "down", "cli")[0] == 0
    assert list_replicas() == []
