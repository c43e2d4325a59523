"""SQL literals that reproduce a value exactly, for any type.

Values are read from the backup as their text output (`col::text`) and written back as `'<text>'::<type>`, where
`<type>` is `format_type()` of the column. Postgres parses its own text output losslessly for every built-in type
(numeric without float rounding, arrays with quoted/NULL elements, json, bytea hex, enums, ranges, ...), so the
round trip is exact without any Python-side type conversion. Reading sessions pin the settings that shape text output
(`restore.snapshot.SESSION_SETTINGS`) so the same value always has the same text, whoever runs the script later.
"""

from collections.abc import Iterable, Sequence

from psycopg import sql

from restore.snapshot import SESSION_SETTINGS

# Types without an equality operator: guards compare their text instead.
_NO_EQUALITY = frozenset({"json", "xml", "point", "line", "lseg", "box", "path", "polygon", "circle"})


def quote_text(value: str) -> str:
    """A string constant for `value`, correct whatever standard_conforming_strings is set to."""
    quoted = value.replace("'", "''")
    if "\\" in value:
        return "E'" + quoted.replace("\\", "\\\\") + "'"
    return "'" + quoted + "'"


def literal(value: str | None, type_name: str, *, typed_null: bool = False) -> str:
    """`'<value>'::<type>`, or NULL (typed when it must carry its type, e.g. in a VALUES list joined on)."""
    if value is None:
        return f"NULL::{type_name}" if typed_null else "NULL"
    return f"{quote_text(value)}::{type_name}"


def row_literal(values: Sequence[str | None], type_names: Sequence[str], *, typed_null: bool = False) -> str:
    """`(lit, lit, ...)` for one row of text values. Inlined quoting: plans render every value of 100k rows."""
    parts = []
    for value, type_name in zip(values, type_names, strict=True):
        if value is None:
            parts.append(f"NULL::{type_name}" if typed_null else "NULL")
        elif "\\" in value:
            parts.append(f"{quote_text(value)}::{type_name}")
        else:
            parts.append("'" + value.replace("'", "''") + "'::" + type_name)
    return "(" + ", ".join(parts) + ")"


def ident(*names: str) -> str:
    """A (qualified) identifier, always double-quoted so mixed case, spaces and reserved words survive."""
    return sql.Identifier(*names).as_string(None)


def ident_list(names: Iterable[str]) -> str:
    return ", ".join(ident(n) for n in names)


def has_equality(type_name: str) -> bool:
    """Whether `=` / IS NOT DISTINCT FROM works on this type (json and geometric types have none)."""
    base = type_name.removesuffix("[]")
    return base not in _NO_EQUALITY


def settings_sql() -> str:
    """SET statements applying the readers' SESSION_SETTINGS to a session, e.g. one that checks a restore."""
    return "; ".join(f"SET {name} = {quote_text(value)}" for name, value in SESSION_SETTINGS.items())
