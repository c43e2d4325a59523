"""Read-only snapshots of a database, and the one type for "a side" of a comparison (backup or live).

Every reader that compares values across servers (diff, graph, gap, plan) opens its connection here, so all of them
see one consistent snapshot per database and render every value with the same text form. The same text is what
`restore.literals` writes back, so a value read here round-trips exactly through a plan.
"""

import contextlib
from collections.abc import Iterator

import psycopg

from restore.errors import RewindError
from restore.targets import Target, TargetRole, mask_dsn

# A configured target, or a DSN typed on the command line (which then takes the role its position implies).
Side = Target | str

# Session settings that fix every type's text form, so two servers render (and hash) a value identically.
# DateStyle: the output half (ISO) is what matters for reading; the input half decides how a user's own literals in
# `--where` are read. MDY is Postgres's own default, so a condition means here what it means in psql.
SESSION_SETTINGS: dict[str, str] = {
    "TimeZone": "UTC",
    "DateStyle": "ISO, MDY",
    "IntervalStyle": "postgres",
    "extra_float_digits": "1",
    "bytea_output": "hex",
    "jit": "off",  # these are short scans and key lookups: compiling them costs more than it saves
}


def as_target(side: Side, role: TargetRole) -> Target:
    """The side as a target: a DSN becomes an ad-hoc target named by its masked DSN, with `role`."""
    if isinstance(side, Target):
        return side
    return Target(name=mask_dsn(side), dsn=side, role=role)


@contextlib.contextmanager
def read_only_snapshot(
    side: Side, role: TargetRole, *, error: type[RewindError] = RewindError
) -> Iterator[tuple[Target, psycopg.Connection]]:
    """A connection in one REPEATABLE READ READ ONLY transaction with SESSION_SETTINGS; rolled back at the end.

    A connection failure raises `error` (the caller's own error type) with the DSN's password masked."""
    target = as_target(side, role)
    try:
        conn = psycopg.connect(target.dsn, autocommit=False)
    except psycopg.OperationalError as exc:
        raise error(f"Cannot connect to {target.name}: {mask_dsn(str(exc)).strip()}") from exc
    try:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        for name, value in SESSION_SETTINGS.items():
            conn.execute("SELECT set_config(%s, %s, false)", (name, value))
        yield target, conn
    finally:
        with contextlib.suppress(psycopg.Error):
            conn.rollback()
        conn.close()
