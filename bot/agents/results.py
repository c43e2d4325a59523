"""What every tool hands back: one envelope, its payload in the CLI's `--json` shape, capped in size.

An agent reads results into a context window, so each one is cut to `CAP_BYTES` of JSON. Cutting keeps the shape: the
longest lists and strings of the payload lose their tail until it fits, and the envelope says what was cut and what
the cap is, so the agent can narrow its question instead of guessing.
"""

import json
from typing import Any

from pydantic import BaseModel, Field
from pydantic_core import to_jsonable_python

CAP_BYTES = 50_000  # bytes of JSON per tool result
_ENVELOPE_ROOM = 4_000  # what the envelope's own fields (notes, warnings) may take of the cap


def cap_text(cap: int) -> str:
    return f"results are capped at {cap:,} bytes of JSON; what did not fit is cut and listed in `cut`"


class ToolResult(BaseModel):
    """One tool call's answer. `ok` false: `error` says why it was refused, in the words of the service that did."""

    tool: str
    ok: bool
    result: Any = Field(None, description="the answer, in the shape of the matching `rewind … --json` command")
    error: str | None = Field(None, description="why the call was refused or failed, and what to do instead")
    warnings: list[str] = Field(default_factory=list)
    truncated: bool = Field(False, description="true when part of the result was cut to fit under the cap")
    cap: str = Field(cap_text(CAP_BYTES), description="the size cap every result is held to")
    cut: list[str] = Field(default_factory=list, description="what was cut to fit under the cap, one line per field")


def jsonable(value: Any) -> Any:
    """Plain JSON values (dates as ISO text, decimals and other types as their text)."""
    return to_jsonable_python(value, fallback=str)


def size_of(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


def fit(payload: Any, cap: int = CAP_BYTES, *, whole: frozenset[str] = frozenset()) -> tuple[Any, list[str]]:
    """The payload cut to about `cap - room` bytes of JSON, and one line per cut field.

    The largest list or string field of a dict payload is cut first, to as many items (or characters) as fit; then the
    next, until the whole fits. Fields named in `whole` are never cut part-way but dropped (a script cut short could
    still run). A payload that is not a dict, or that cannot be cut enough, is dropped whole."""
    budget = max(0, cap - _ENVELOPE_ROOM)
    payload = jsonable(payload)
    if size_of(payload) <= budget:
        return payload, []
    if not isinstance(payload, dict):
        return None, [f"the whole result ({size_of(payload):,} bytes) is over the cap; ask for less"]
    result = dict(payload)
    cut: list[str] = []
    done: set[str] = set()  # each field is cut once, to as much as fits beside the others
    while size_of(result) > budget:
        cuttable = [k for k, v in result.items() if isinstance(v, list | str) and v and k not in done]
        if not cuttable:
            return None, [*cut, f"the result is still over the cap after cutting ({size_of(result):,} bytes)"]
        key = max(cuttable, key=lambda k: size_of(result[k]))
        value = result[key]
        done.add(key)
        if key in whole:
            result[key] = None
            cut.append(f"{key}: left out whole ({size_of(value):,} bytes), it is never cut part-way")
            continue
        room = budget - size_of({**result, key: value[:0]})
        kept = _longest_prefix(value, room)
        result[key] = value[:kept]
        unit = "characters" if isinstance(value, str) else "items"
        cut.append(f"{key}: kept the first {kept:,} of {len(value):,} {unit}")
    return result, cut


def _longest_prefix(value: list[Any] | str, room: int) -> int:
    """How many leading items (or characters) of `value` fit in `room` bytes of JSON."""
    low, high = 0, len(value)
    while low < high:
        middle = (low + high + 1) // 2
        if size_of(value[:middle]) <= room:
            low = middle
        else:
            high = middle - 1
    return low
