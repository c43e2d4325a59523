"""Every common type survives text -> literal -> value unchanged, checked on the real server."""

import psycopg
import pytest

from restore.literals import has_equality, ident, literal, quote_text, settings_sql

SCHEMA = """
CREATE TYPE mood AS ENUM ('happy', 'it''s complicated');
CREATE TABLE "Odd Table" (
  "select" int PRIMARY KEY,
  "MixedCase" text,
  t text, j json, jb jsonb, ta text[], ia int[], e mood, b bytea, n numeric, n2 numeric(12, 4),
  f float8, r real, ts timestamp, tstz timestamptz, d date, tm time, tmz timetz, iv interval,
  bo boolean, u uuid, ir int4range, inet_ inet, pt point, x xml, ea mood[]
);
"""

VALUES = {
    "MixedCase": "Mixed",
    "t": "it's a \\back\\slash 'quoted' \"dq\" ; -- not a comment\nnewline\ttab é 🎉",
    "j": '{"b": 1,  "a": "x\'y\\\\z", "keep": "spacing"}',
    "jb": '{"nested": {"arr": [1, null, "q\'"]}}',
    "ta": ["a'b", None, 'dq"x', "back\\slash", "", "NULL", "com,ma", "{brace}"],
    "ia": [1, None, -3],
    "e": "it's complicated",
    "b": b"\x00\x01'\\\xff",
    "n": "12345678901234567890.123456789012345678901234567890",
    "n2": "-0.1000",
    "f": "0.1",
    "r": "3.4028235e+38",
    "ts": "2024-02-29 23:59:59.123456",
    "tstz": "2024-03-31 01:30:00.5+05:45",
    "d": "0044-03-15 BC",
    "tm": "23:59:59.999999",
    "tmz": "12:00:00-03:30",
    "iv": "1 year 2 mons 3 days 04:05:06.7",
    "bo": False,
    "u": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
    "ir": "[1,10)",
    "inet_": "192.168.0.1/24",
    "pt": "(1.5,-2)",
    "x": "<a b='1'>x &amp; y</a>",
    "ea": '{happy,"it\'s complicated",NULL}',
}


@pytest.fixture
def conn(pg_dsn: str):
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(SCHEMA)
        cols = ", ".join(ident(c) for c in VALUES)
        marks = ", ".join(["%s"] * len(VALUES))
        conn.execute(f'INSERT INTO "Odd Table" ("select", {cols}) VALUES (1, {marks})', list(VALUES.values()))
        conn.execute("""INSERT INTO "Odd Table" ("select") VALUES (2)""")
        yield conn


def _text_row(conn: psycopg.Connection, key: int) -> dict[str, tuple[str | None, str]]:
    """Column -> (value as text, format_type), read under the pinned output settings."""
    types = dict(
        conn.execute(
            """SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
               WHERE attrelid = '"Odd Table"'::regclass AND attnum > 0 AND NOT attisdropped"""
        ).fetchall()
    )
    cols = ", ".join(f"{ident(c)}::text" for c in types)
    values = conn.execute(f'SELECT {cols} FROM "Odd Table" WHERE "select" = %s', (key,)).fetchone()
    assert values is not None
    return {c: (v, t) for (c, t), v in zip(types.items(), values, strict=True)}


@pytest.mark.parametrize("conforming", ["on", "off"])
@pytest.mark.parametrize("key", [1, 2])
def test_every_type_round_trips_through_its_literal(conn: psycopg.Connection, conforming: str, key: int) -> None:
    conn.execute(settings_sql())
    row = _text_row(conn, key)
    conn.execute(f"SET standard_conforming_strings = {conforming}")
    for column, (text, type_name) in row.items():
        lit = literal(text, type_name, typed_null=True)
        [(back,)] = conn.execute(f"SELECT ({lit})::text").fetchall()
        assert back == text, (column, lit)
        if has_equality(type_name):
            [(same,)] = conn.execute(
                f'SELECT {ident(column)} IS NOT DISTINCT FROM {lit} FROM "Odd Table" WHERE "select" = %s', (key,)
            ).fetchall()
            assert same, (column, lit)


def test_values_come_back_as_the_original_python_values(conn: psycopg.Connection) -> None:
    conn.execute(settings_sql())
    row = _text_row(conn, 1)
    for column in ("t", "ta", "ia", "b", "bo"):
        text, type_name = row[column]
        [(value,)] = conn.execute(f"SELECT {literal(text, type_name)}").fetchall()
        assert value == VALUES[column]


def test_quote_text_is_safe_for_backslashes_and_quotes() -> None:
    assert quote_text("plain") == "'plain'"
    assert quote_text("it's") == "'it''s'"
    assert quote_text("a\\b'") == "E'a\\\\b'''"
    assert literal(None, "int") == "NULL" and literal(None, "int", typed_null=True) == "NULL::int"


def test_identifiers_are_quoted() -> None:
    assert ident("public", "Odd Table") == '"public"."Odd Table"'
    assert ident('we"ird') == '"we""ird"'
