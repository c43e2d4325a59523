"""A decoder for the `pgoutput` plugin's messages (protocol version 1), as returned by
`pg_logical_slot_peek_binary_changes(..., 'proto_version', '1', 'publication_names', ...)`.

Only what a journal needs: Begin, Commit, Relation, Insert, Update, Delete and Truncate. Origin and Type messages are
read and ignored. Column values arrive as the type's text output, which is what `restore.literals` writes back.
"""

import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from restore.errors import RewindError

_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_U32 = struct.Struct(">I").unpack_from

# A column whose value was TOASTed and left unchanged by an UPDATE: pgoutput does not send it.
UNCHANGED = object()


class DecodeError(RewindError):
    """A message the decoder does not understand (a newer protocol, or a plugin other than pgoutput)."""


@dataclass(frozen=True, slots=True)
class Begin:
    final_lsn: int  # the LSN of the commit record, the same as Commit.commit_lsn
    commit_time: datetime
    xid: int


@dataclass(frozen=True, slots=True)
class Commit:
    commit_lsn: int
    end_lsn: int  # the LSN just past the commit record: where the slot may advance to
    commit_time: datetime


@dataclass(frozen=True, slots=True)
class RelationColumn:
    name: str
    type_oid: int
    type_mod: int
    key: bool


@dataclass(frozen=True, slots=True)
class Relation:
    oid: int
    schema: str
    name: str
    replica_identity: str  # 'd' default, 'n' nothing, 'f' full, 'i' index
    columns: tuple[RelationColumn, ...]

    @property
    def qualified(self) -> str:
        return f"{self.schema or 'pg_catalog'}.{self.name}"


Tuple = list  # values per column: str | None | UNCHANGED


@dataclass(frozen=True, slots=True)
class Insert:
    oid: int
    new: Tuple


@dataclass(frozen=True, slots=True)
class Update:
    oid: int
    old: Tuple | None  # the old row ('O', replica identity FULL) or its key ('K'), or None when neither was sent
    old_is_key: bool
    new: Tuple


@dataclass(frozen=True, slots=True)
class Delete:
    oid: int
    old: Tuple
    old_is_key: bool


@dataclass(frozen=True, slots=True)
class Truncate:
    oids: tuple[int, ...]
    cascade: bool
    restart_identity: bool


Message = Begin | Commit | Relation | Insert | Update | Delete | Truncate | None


def pg_time(micros: int) -> datetime:
    return _PG_EPOCH + timedelta(microseconds=micros)


def lsn_text(lsn: int) -> str:
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def parse_lsn(text: str) -> int:
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) | int(low, 16)


def _i64(data: bytes, pos: int) -> int:
    return int.from_bytes(data[pos : pos + 8], "big", signed=True)


def _u32(data: bytes, pos: int) -> int:
    return int.from_bytes(data[pos : pos + 4], "big")


def _string(data: bytes, pos: int) -> tuple[str, int]:
    end = data.index(0, pos)
    return data[pos:end].decode(), end + 1


def _tuple(data: bytes, pos: int) -> tuple[Tuple, int]:
    """TupleData: Int16 column count, then per column 'n' (null), 'u' (unchanged TOAST) or 't' Int32 len, text."""
    count = int.from_bytes(data[pos : pos + 2], "big")
    pos += 2
    values: Tuple = []
    append = values.append
    # Mostly ASCII: then byte offsets are character offsets, and one decode serves every value.
    text = data.decode("ascii") if data.isascii() else None
    for _ in range(count):
        kind = data[pos]
        if kind == 116:  # 't'
            length = _U32(data, pos + 1)[0]
            start = pos + 5
            pos = start + length
            append(text[start:pos] if text is not None else data[start:pos].decode())
        elif kind == 110:  # 'n'
            append(None)
            pos += 1
        elif kind == 117:  # 'u'
            append(UNCHANGED)
            pos += 1
        else:
            raise DecodeError(f"Unexpected column kind {chr(kind)!r} in pgoutput tuple data (binary mode is not used).")
    return values, pos


def decode(data: bytes) -> Message:
    """One pgoutput message; None for messages a journal ignores (Origin, Type, logical messages)."""
    tag = data[0]
    if tag == 73:  # 'I'
        new, _ = _tuple(data, 6)
        return Insert(_u32(data, 1), new)
    if tag == 85:  # 'U'
        oid = _u32(data, 1)
        kind = data[5]
        if kind == 78:  # 'N'
            new, _ = _tuple(data, 6)
            return Update(oid, None, False, new)
        old, pos = _tuple(data, 6)
        new, _ = _tuple(data, pos + 1)
        return Update(oid, old, kind == 75, new)
    if tag == 68:  # 'D'
        old, _ = _tuple(data, 6)
        return Delete(_u32(data, 1), old, data[5] == 75)
    if tag == 66:  # 'B'
        return Begin(_i64(data, 1), pg_time(_i64(data, 9)), _u32(data, 17))
    if tag == 67:  # 'C'
        return Commit(_i64(data, 2), _i64(data, 10), pg_time(_i64(data, 18)))
    if tag == 82:  # 'R'
        return _relation(data)
    if tag == 84:  # 'T'
        count = _u32(data, 1)
        options = data[5]
        oids = tuple(_u32(data, 6 + 4 * i) for i in range(count))
        return Truncate(oids, bool(options & 1), bool(options & 2))
    if tag in (79, 89, 77):  # 'O' origin, 'Y' type, 'M' logical message
        return None
    raise DecodeError(
        f"Unknown pgoutput message {chr(tag)!r}: the slot must use the pgoutput plugin with proto_version 1."
    )


def _relation(data: bytes) -> Relation:
    oid = _u32(data, 1)
    schema, pos = _string(data, 5)
    name, pos = _string(data, pos)
    identity = chr(data[pos])
    count = int.from_bytes(data[pos + 1 : pos + 3], "big")
    pos += 3
    columns = []
    for _ in range(count):
        flags = data[pos]
        column, pos = _string(data, pos + 1)
        type_oid = _u32(data, pos)
        type_mod = int.from_bytes(data[pos + 4 : pos + 8], "big", signed=True)
        pos += 8
        columns.append(RelationColumn(column, type_oid, type_mod, bool(flags & 1)))
    return Relation(oid, schema, name, identity, tuple(columns))


# --- the journal's hot path: find keys without decoding whole rows; decode stored bodies later ---------------------


def skip_tuple(data: bytes, pos: int) -> int:
    """The position just past the TupleData starting at `pos`, without decoding its values."""
    count = int.from_bytes(data[pos : pos + 2], "big")
    pos += 2
    for _ in range(count):
        if data[pos] == 116:  # 't'
            pos += 5 + _U32(data, pos + 1)[0]
        else:
            pos += 1
    return pos


def tuple_prefix(data: bytes, pos: int, n: int) -> Tuple:
    """The first `n` values of the TupleData starting at `pos` (keys usually come first)."""
    pos += 2
    values: Tuple = []
    for _ in range(n):
        kind = data[pos]
        if kind == 116:
            length = _U32(data, pos + 1)[0]
            start = pos + 5
            pos = start + length
            values.append(data[start:pos].decode())
        else:
            values.append(None if kind == 110 else UNCHANGED)
            pos += 1
    return values


def decode_body(op: str, body: bytes) -> tuple[Tuple | None, bool, Tuple | None]:
    """(old values, old is the key only, new values) of a change's body: an Insert, Update or Delete message
    without its tag and relation oid, as the journal stores it."""
    kind = body[0]
    if op == "insert":
        return None, False, _tuple(body, 1)[0]
    if op == "delete":
        return _tuple(body, 1)[0], kind == 75, None
    if kind == 78:  # 'N': no old row was sent
        return None, False, _tuple(body, 1)[0]
    old, pos = _tuple(body, 1)
    return old, kind == 75, _tuple(body, pos + 1)[0]
