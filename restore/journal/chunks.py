"""How a journal keeps row changes: in chunks, runs of consecutive changes to one table within one transaction.

A sync stores a chunk as one row, not one row per change: a store insert costs far more than the bytes it carries,
and a million-change sync spends its time on inserts otherwise. Everything a reader searches on is kept apart from
the bodies, as text a database can scan at C speed:

- `ops`: one letter per change (I, U, D, T);
- `keys`: one line per change, the row's key as compact JSON (`["42"]`), then a tab and the key before the change
  when an update changed it; an empty line for a change without a key. The text starts and ends with a newline, so
  `\\n["42"]\\n` finds a key exactly;
- `data`: the changes' LSNs (8 bytes each), their bodies' lengths (4 bytes each), then the bodies, as pgoutput sent
  them (an Insert/Update/Delete message after its tag and relation oid); integers little-endian; all of it
  compressed with zlib at level 1. Rows compress about 6 times, and a sync spends less time compressing them
  than the store would spend writing them whole.
"""

import json
import sys
import zlib
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from restore.journal import pgoutput
from restore.journal.pgoutput import UNCHANGED

Row = dict[str, str | None]
Key = list[str | None]

OPS = {"I": "insert", "U": "update", "D": "delete", "T": "truncate"}
_LITTLE = sys.byteorder == "little"


@dataclass(slots=True)
class Change:
    """One decoded row change, as readers of the journal see it."""

    commit_lsn: int
    seq: int  # position within its transaction, from 0; with commit_lsn it identifies the change
    lsn: int
    xid: int
    full_xid: int
    commit_time: datetime
    table: str
    op: str  # insert | update | delete | truncate
    key: Key | None  # the row's key after the change (before it, for a delete)
    old_key: Key | None  # an update that changed the key: the key before
    body: bytes | None  # the Insert/Update/Delete message after its tag and oid; None for a truncate
    columns: tuple[str, ...]  # the column names the body's values belong to
    decoded: "tuple[Row | None, Row | None] | None" = field(default=None, repr=False, compare=False)

    @property
    def old(self) -> Row | None:
        """The whole row before the change (only its key when replica identity is not FULL)."""
        return self.rows()[0]

    @property
    def new(self) -> Row | None:
        """The row after the change; an unchanged TOASTed value is the old row's (left out if that is unknown)."""
        return self.rows()[1]

    def rows(self) -> "tuple[Row | None, Row | None]":
        if self.decoded is None:
            self.decoded = rows_of(self.op, self.body, self.columns)
        return self.decoded


def rows_of(op: str, body: bytes | None, columns: Sequence[str]) -> tuple[Row | None, Row | None]:
    if body is None:
        return None, None
    old_values, key_only, new_values = pgoutput.decode_body(op, body)
    old: Row | None = None
    if old_values is not None:
        old = {
            c: v
            for c, v in zip(columns, old_values, strict=True)
            if v is not UNCHANGED and not (key_only and v is None)
        }
    if new_values is None:
        return old, None
    new: Row = {}
    for c, v in zip(columns, new_values, strict=True):
        if v is UNCHANGED:
            if old is None or c not in old:
                continue
            v = old[c]
        new[c] = v
    return old, new


@dataclass(slots=True)
class Chunk:
    """Consecutive changes to one table in one transaction, as a sync collects them and the store keeps them."""

    commit_lsn: int
    seq: int  # the first change's position in its transaction
    xid: int
    full_xid: int
    commit_time: datetime
    table: str
    oid: int  # the table's oid when the changes were made (0 for a truncate)
    columns: tuple[str, ...]  # the column names the bodies' values belong to
    types: tuple[int, ...] = ()  # and their type oids: with the names, the relation version the bodies follow
    ops: bytearray = field(default_factory=bytearray)
    keys: list[str] = field(default_factory=list)
    lsns: array = field(default_factory=lambda: array("q"))
    bodies: list[bytes] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ops)

    def counts(self) -> dict[str, int]:
        return {name: self.ops.count(letter.encode()) for letter, name in OPS.items()}

    def keys_text(self) -> str:
        return "\n" + "\n".join(self.keys) + "\n"

    def data(self) -> bytes:
        lsns, lengths = self.lsns, array("I", [len(b) for b in self.bodies])
        if not _LITTLE:
            lsns = array("q", lsns)  # a copy: the chunk's own LSNs stay as they are
            lsns.byteswap()
            lengths.byteswap()
        return zlib.compress(b"".join((lsns.tobytes(), lengths.tobytes(), *self.bodies)), 1)

    def changes(self) -> list[Change]:
        return [self.change(i) for i in range(len(self.ops))]

    def change(self, i: int) -> Change:
        return Change(
            self.commit_lsn, self.seq + i, self.lsns[i], self.xid, self.full_xid, self.commit_time, self.table,
            OPS[chr(self.ops[i])], *split_key_line(self.keys[i]), self.bodies[i] or None, self.columns,
        )  # fmt: skip


def stored_chunk(
    commit_lsn: int,
    seq: int,
    xid: int,
    full_xid: int,
    commit_time: datetime,
    table: str,
    columns: tuple[str, ...],
    ops: str,
    keys: str,
    data: bytes | None,
) -> Chunk:
    """A chunk back from the store. Without `data` (a reader that needs only which rows changed), LSNs are 0 and
    bodies empty."""
    n = len(ops)
    lsns, bodies = array("q", bytes(8 * n)), [b""] * n
    if data is not None:
        data = zlib.decompress(data)
        lsns = array("q", data[: 8 * n])
        lengths = array("I", data[8 * n : 12 * n])
        if not _LITTLE:
            lsns.byteswap()
            lengths.byteswap()
        pos, bodies = 12 * n, []
        for length in lengths:
            bodies.append(data[pos : pos + length])
            pos += length
    return Chunk(
        commit_lsn, seq, xid, full_xid, commit_time, table, 0, columns, (), bytearray(ops.encode()),
        keys[1:-1].split("\n"), lsns, bodies,
    )  # fmt: skip


def key_json(key: Sequence[str | None] | None) -> str | None:
    """A row key as stored and searched: a compact JSON array of the key columns' text values."""
    if key is None:
        return None
    if len(key) == 1:
        return value_key_json(key[0])
    return json.dumps(list(key), separators=(",", ":"))


def value_key_json(value: str | None) -> str:
    """`key_json` of a one-column key; a plain value (an integer, a code) without the JSON encoder, because a sync
    does this for nearly every change."""
    if value is not None and value.isalnum() and value.isascii():
        return '["' + value + '"]'
    return json.dumps([value], separators=(",", ":"))


def key_from_json(text: str | None) -> Key | None:
    """`key_json` reversed; the common one-plain-value case without the decoder."""
    if not text:
        return None
    if text.startswith('["') and text.endswith('"]') and '"' not in text[2:-2] and "\\" not in text:
        return [text[2:-2]]
    return json.loads(text)


def split_key_line(line: str) -> tuple[Key | None, Key | None]:
    key, _, old = line.partition("\t")
    return key_from_json(key), key_from_json(old)


def key_needles(key: Sequence[str | None]) -> tuple[str, str, str]:
    """What to search a chunk's `keys` text for: the key as a line, as a line's key before a tab, or after it."""
    text = key_json(key)
    return f"\n{text}\n", f"\n{text}\t", f"\t{text}\n"
