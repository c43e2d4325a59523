"""Backup vs live diffs on real Postgres: two databases on the test server, seeded alike, then live damaged."""

import json
import uuid
from pathlib import Path

import pytest

from bot.cli import main
from restore.diff import DiffError, diff_table
from restore.keys import KeysFileError, deleted_keys, read_keys_file, table_key
from tests.restore.conftest import execute

TYPES_SCHEMA = """
CREATE TABLE items (
    id int PRIMARY KEY,
    label text,
    price numeric(10, 2),
    ratio float8,
    seen_at timestamptz,
    doc json,
    meta jsonb,
    tags text[],
    doubled int GENERATED ALWAYS AS (id * 2) STORED
);
INSERT INTO items (id, label, price, ratio, seen_at, doc, meta, tags)
SELECT i, 'item ' || i, i * 1.25, i / 3.0, timestamptz '2026-01-01 00:00:00+00' + i * interval '1 minute',
       json_build_object('n', i), jsonb_build_object('n', i, 'k', ARRAY[i, i]), ARRAY['a' || i, NULL]
FROM generate_series(1, 200) AS i;
UPDATE items SET label = NULL WHERE id = 7;
"""


def seeded(pair: tuple[str, str], schema: str, damage: str) -> tuple[str, str]:
    backup, live = pair
    execute(backup, schema)
    execute(live, schema)
    execute(live, damage)
    return backup, live


def changed_by_key(result) -> dict:  # type: ignore[no-untyped-def]
    return {tuple(row.key): row.columns for row in result.changed}


def test_deleted_added_and_changed_rows_name_the_changed_columns(pair: tuple[str, str]) -> None:
    backup, live = seeded(
        pair,
        TYPES_SCHEMA,
        """
        DELETE FROM items WHERE id IN (3, 150);
        INSERT INTO items (id, label) VALUES (500, 'new');
        UPDATE items SET label = '' WHERE id = 7;                        -- NULL -> '' is a change
        UPDATE items SET price = price + 0.01 WHERE id = 10;
        UPDATE items SET ratio = ratio + 1e-12 WHERE id = 11;            -- floats compare exactly
        UPDATE items SET seen_at = seen_at + interval '1 second' WHERE id = 12;
        UPDATE items SET doc = '{"n":13}' WHERE id = 13;                -- json compares as written
        UPDATE items SET meta = meta || '{"x": 1}' WHERE id = 14;
        UPDATE items SET tags = ARRAY['a15'] WHERE id = 15;              -- [a15, NULL] -> [a15]
        UPDATE items SET label = 'x', price = 0 WHERE id = 16;
        UPDATE items SET seen_at = '2026-01-01 02:20:00+02' WHERE id = 20;  -- same instant, other zone: equal
        UPDATE items SET meta = '{"k": [21, 21], "n": 21}' WHERE id = 21;   -- jsonb normalises key order: equal
        """,
    )
    result = diff_table(backup, live, "items")
    assert result.key == ["id"]
    assert result.deleted == [[3], [150]]
    assert result.added == [[500]]
    assert changed_by_key(result) == {
        (7,): ["label"],
        (10,): ["price"],
        (11,): ["ratio"],
        (12,): ["seen_at"],
        (13,): ["doc"],
        (14,): ["meta"],
        (15,): ["tags"],
        (16,): ["label", "price"],
    }
    assert result.counts["backup_rows"] == 200 and result.counts["live_rows"] == 199


def test_generated_columns_are_not_compared(pair: tuple[str, str]) -> None:
    schema = "CREATE TABLE g (id int PRIMARY KEY, v int, w int GENERATED ALWAYS AS (v + 1) STORED);"
    schema += "INSERT INTO g (id, v) SELECT i, i FROM generate_series(1, 10) i;"
    damage = "ALTER TABLE g DROP COLUMN w; ALTER TABLE g ADD COLUMN w int GENERATED ALWAYS AS (v + 2) STORED;"
    damage += "UPDATE g SET v = 0 WHERE id = 1;"
    backup, live = seeded(pair, schema, damage)
    result = diff_table(backup, live, "g")
    assert changed_by_key(result) == {(1,): ["v"]}  # w differs on every row, by its expression: not a data change


def test_composite_text_and_uuid_keys_do_not_depend_on_collation(pair: tuple[str, str]) -> None:
    ids = [uuid.UUID(int=i * 7919) for i in range(1, 41)]
    values = ", ".join(f"('{t}', '{u}', {n})" for n, u in enumerate(ids) for t in ("a", "B", "ä", "Z z"))
    schema = f"""
    CREATE TABLE acct (tenant text, id uuid, n int, PRIMARY KEY (tenant, id));
    INSERT INTO acct VALUES {values};
    """
    damage = f"""
    ALTER TABLE acct ALTER COLUMN tenant TYPE text COLLATE "C";   -- live sorts text differently
    DELETE FROM acct WHERE tenant = 'ä' AND id = '{ids[0]}';
    UPDATE acct SET n = -1 WHERE tenant = 'B' AND id = '{ids[5]}';
    INSERT INTO acct VALUES ('b', '{ids[5]}', 5);
    """
    backup, live = seeded(pair, schema, damage)
    result = diff_table(backup, live, "acct")
    assert result.key == ["tenant", "id"]
    assert result.counts["key_ranges"] == 0  # a composite text key is bucketed by hash, never by text order
    assert result.deleted == [["ä", ids[0]]]
    assert result.added == [["b", ids[5]]]
    assert changed_by_key(result) == {("B", ids[5]): ["n"]}


def test_where_filters_both_sides_and_a_row_that_left_the_filter_is_changed(pair: tuple[str, str]) -> None:
    backup, live = seeded(
        pair,
        TYPES_SCHEMA,
        """
        DELETE FROM items WHERE id IN (4, 104);
        UPDATE items SET price = 999 WHERE id = 40;     -- leaves the filter below, but still exists
        UPDATE items SET label = 'z' WHERE id = 130;    -- outside the filter on both sides
        """,
    )
    result = diff_table(backup, live, "items", where="price < 100")
    assert result.deleted == [[4]]
    assert changed_by_key(result) == {(40,): ["price"]}
    assert deleted_keys(backup, live, "items", where="price < 100") == [(4,)]


def test_where_must_be_one_condition(pair: tuple[str, str]) -> None:
    backup, live = seeded(pair, TYPES_SCHEMA, "")
    with pytest.raises(DiffError, match="--where"):
        diff_table(backup, live, "items", where="true; DELETE FROM items")
    for dsn in (backup, live):
        execute(dsn, "CREATE SEQUENCE s")
    with pytest.raises(DiffError, match="read-only transaction"):
        diff_table(backup, live, "items", where="nextval('s') > 0")


def test_identical_buckets_are_skipped_on_a_large_table(pair: tuple[str, str]) -> None:
    schema = """
    CREATE TABLE big (id bigint PRIMARY KEY, name text, amount numeric);
    INSERT INTO big SELECT i, md5(i::text), i / 7.0 FROM generate_series(1, 50000) i;
    ANALYZE big;
    """
    damage = (
        "DELETE FROM big WHERE id = 17; UPDATE big SET name = 'x' WHERE id = 40000; INSERT INTO big VALUES (0, '', 0)"
    )
    backup, live = seeded(pair, schema, damage)
    result = diff_table(backup, live, "big")
    assert (result.deleted, result.added, changed_by_key(result)) == ([[17]], [[0]], {(40000,): ["name"]})
    counts = result.counts
    assert counts["key_ranges"] == 1  # a bigint primary key: buckets are key ranges, re-read by index range scans
    assert counts["buckets"] >= 1024
    assert counts["buckets_differing"] <= 3
    # Only the rows of the (at most 3) differing buckets were fetched, not the 50,000.
    assert counts["rows_fetched_backup"] < 500 and counts["rows_fetched_live"] < 500


def test_integer_key_ranges_split_until_only_the_differing_rows_are_fetched(pair: tuple[str, str]) -> None:
    # Keys bunched at both ends of a vast range: the first ranges hold thousands of rows each, so the differing ones
    # must be split (and split again) before any row is fetched. Live's key is int8, backup's int4: alike as values.
    schema = """
    CREATE TABLE skew (id int PRIMARY KEY, v text);
    INSERT INTO skew SELECT i, md5(i::text) FROM generate_series(-2000000000, -1999990001) i;
    INSERT INTO skew SELECT i, md5(i::text) FROM generate_series(1, 10000) i;
    INSERT INTO skew VALUES (2147483647, 'max');
    ANALYZE skew;
    """
    damage = """
    ALTER TABLE skew ALTER COLUMN id TYPE bigint;
    DELETE FROM skew WHERE id = -1999995000;
    UPDATE skew SET v = 'x' WHERE id IN (5000, 2147483647);
    INSERT INTO skew VALUES (3000000000, 'beyond int4'), (-9223372036854775808, 'min');
    """
    backup, live = seeded(pair, schema, damage)
    result = diff_table(backup, live, "skew")
    assert result.deleted == [[-1999995000]]
    assert result.added == [[-9223372036854775808], [3000000000]]
    assert changed_by_key(result) == {(5000,): ["v"], (2147483647,): ["v"]}
    counts = result.counts
    assert counts["key_ranges"] == 1 and counts["backup_rows"] == 20001
    assert counts["rows_fetched_backup"] < 300 and counts["rows_fetched_live"] < 300


def test_integer_key_ranges_with_a_filter_and_an_unindexed_integer_key(pair: tuple[str, str]) -> None:
    schema = """
    CREATE TABLE nums (id bigint PRIMARY KEY, code int NOT NULL, v int);
    INSERT INTO nums SELECT i, 100000 - i, i % 7 FROM generate_series(1, 20000) i;
    ANALYZE nums;
    """
    damage = "DELETE FROM nums WHERE id IN (10, 15000); UPDATE nums SET v = 99 WHERE id IN (11, 12000)"
    backup, live = seeded(pair, schema, damage)
    result = diff_table(backup, live, "nums", where="v < 50")
    assert result.deleted == [[10], [15000]]
    assert changed_by_key(result) == {(11,): ["v"], (12000,): ["v"]}  # left the filter, still there: changed
    assert result.counts["key_ranges"] == 1
    # An integer --key without an index is bucketed by hash: ranges would each need a full scan.
    by_code = diff_table(backup, live, "nums", key=["code"])
    assert by_code.counts["key_ranges"] == 0
    assert sorted(by_code.deleted) == [[85000], [99990]]
    assert changed_by_key(by_code) == {(99989,): ["v"], (88000,): ["v"]}


def test_uuid_key_fetches_only_differing_buckets(pair: tuple[str, str]) -> None:
    schema = """
    CREATE TABLE docs (id uuid PRIMARY KEY, body jsonb, score float8);
    INSERT INTO docs SELECT md5(i::text)::uuid, jsonb_build_object('i', i), i / 7.0 FROM generate_series(1, 20000) i;
    ANALYZE docs;
    """
    damage = f"""
    DELETE FROM docs WHERE id = '{uuid.UUID(hex="c4ca4238a0b923820dcc509a6f75849b")}';  -- md5('1')
    UPDATE docs SET score = score + 1e-9 WHERE body = '{{"i": 777}}';
    """
    backup, live = seeded(pair, schema, damage)
    result = diff_table(backup, live, "docs")
    assert result.deleted == [[uuid.UUID(hex="c4ca4238a0b923820dcc509a6f75849b")]]
    assert list(changed_by_key(result).values()) == [["score"]]
    assert result.counts["key_ranges"] == 0 and result.counts["buckets_differing"] <= 2
    assert result.counts["rows_fetched_backup"] < 200


def test_identical_tables_fetch_no_rows(pair: tuple[str, str]) -> None:
    backup, live = seeded(pair, TYPES_SCHEMA, "")
    result = diff_table(backup, live, "items")
    assert (result.deleted, result.added, result.changed) == ([], [], [])
    assert result.counts["rows_fetched_backup"] == result.counts["rows_fetched_live"] == 0


def test_a_key_that_is_not_unique_is_refused(pair: tuple[str, str]) -> None:
    backup, live = seeded(pair, TYPES_SCHEMA, "UPDATE items SET price = 1 WHERE id < 5; UPDATE items SET label = 'd'")
    with pytest.raises(DiffError, match="not unique"):
        diff_table(backup, live, "items", key=["price"])


def test_cli_json_output_is_json_safe(pair: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    schema = """
    CREATE TABLE ev (id uuid PRIMARY KEY, at timestamptz, amount numeric);
    INSERT INTO ev VALUES ('00000000-0000-0000-0000-000000000001', '2026-01-01 00:00+00', 1.5),
                          ('00000000-0000-0000-0000-000000000002', '2026-01-02 00:00+00', 2.5);
    """
    backup, live = seeded(pair, schema, "DELETE FROM ev WHERE amount = 1.5; UPDATE ev SET amount = 3")
    assert main(["diff", "--backup", backup, "--live", live, "--table", "ev", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"table", "key", "deleted", "added", "changed", "counts"}
    assert out["deleted"] == [["00000000-0000-0000-0000-000000000001"]]
    assert out["changed"] == [{"key": ["00000000-0000-0000-0000-000000000002"], "columns": ["amount"]}]
    assert out["counts"]["deleted"] == 1

    assert main(["diff", "--backup", backup, "--live", live, "--table", "ev", "--key", "at"]) == 0
    assert "1 deleted, 0 added, 1 changed" in capsys.readouterr().out


def test_keys_file_forms(tmp_path: Path, pair: tuple[str, str]) -> None:
    lines = tmp_path / "keys.txt"
    lines.write_text("prod_1\n\n# a comment\nprod_2\n")
    assert read_keys_file(lines, 1) == [("prod_1",), ("prod_2",)]
    arrays = tmp_path / "keys.json"
    arrays.write_text('[["a", 1], ["b", 2]]')
    assert read_keys_file(arrays, 2) == [("a", 1), ("b", 2)]
    with pytest.raises(KeysFileError, match="2 columns"):
        read_keys_file(lines, 2)
    with pytest.raises(KeysFileError, match="has 2 values"):
        read_keys_file(arrays, 1)
    backup, _ = seeded(pair, TYPES_SCHEMA, "")
    assert table_key(backup, "public.items") == ("id",)
