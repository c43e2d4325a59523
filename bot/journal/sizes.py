"""Sizes people type for the journal's settings and options: `500MB`, `2GB`."""

from restore.errors import RewindError


def parse_size(text: str) -> int:
    """`500MB`, `2GB`, `1048576` -> bytes."""
    units = {"kb": 1024, "mb": 1024**2, "gb": 1024**3, "tb": 1024**4, "b": 1}
    raw = text.strip().lower().replace(" ", "")
    for unit, factor in units.items():
        if raw.endswith(unit) and raw[: -len(unit)].replace(".", "", 1).isdigit():
            return int(float(raw[: -len(unit)]) * factor)
    if raw.isdigit():
        return int(raw)
    raise RewindError(f"Cannot read the size {text!r}; write it like 500MB or 2GB.")
