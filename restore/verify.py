"""Is a backup any good? Rows live had before the backup time that the backup lacks, schema drift, and the backup
time against the newest row the backup holds, as numbers and as plain-sentence findings.

A row counts as "before the backup" by its creation column (`created_at` and the like, or one named). The rows are
compared with the diff engine (server-side bucket hashes; only differing key ranges are read), filtered on both sides
to `created < backup time`, so a row live created after the backup is never held against it.
"""

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from pydantic import BaseModel

from restore.catalog import Catalog, Table, load_catalog
from restore.diff import diff_table
from restore.dump import Progress
from restore.errors import RewindError
from restore.meta import backup_time_of
from restore.replica import destroy, provision
from restore.snapshot import Side, read_only_snapshot
from restore.targets import Target, TargetRole

CREATED_COLUMNS = ("created_at", "inserted_at", "created", "created_on", "creation_date", "date_created", "createdAt")
_TIME_TYPES = ("timestamp with time zone", "timestamp without time zone", "date")
SAMPLE_KEYS = 5


class VerifyError(RewindError):
    """A backup check that cannot run as asked (an unknown table or creation column)."""


class TableCheck(BaseModel):
    """One table present on both sides: rows created before the backup time that the backup lacks."""

    table: str
    created_column: str | None
    missing_before_backup: int
    sample_keys: list[list[Any]]
    newest_in_backup: datetime | None
    newest_in_live_before_backup: datetime | None
    unchecked: str | None = None  # why the rows were not compared


class ColumnDifference(BaseModel):
    table: str
    column: str
    backup_type: str | None
    live_type: str | None


class VerifyResult(BaseModel):
    """The answer to "is this backup any good?". `findings` are sentences, one per problem, fit for a yellow flag."""

    backup: str
    live: str
    backup_time: datetime | None
    newest_row_in_backup: datetime | None
    newest_row_table: str | None
    tables: list[TableCheck]
    tables_only_in_live: list[str]
    tables_only_in_backup: list[str]
    column_differences: list[ColumnDifference]
    findings: list[str]


def verify_backup(
    backup: Side,
    live: Side,
    *,
    tables: Sequence[str] = (),
    created_column: str | None = None,
    backup_time: datetime | None = None,
    sample: int = SAMPLE_KEYS,
) -> VerifyResult:
    """Compare a provisioned backup (a replica or backup target) with live; only reads either side."""
    if backup_time is not None and backup_time.tzinfo is None:
        raise VerifyError("Give the backup time with its zone, e.g. 2026-01-22T04:00:00+00:00.")
    with read_only_snapshot(backup, TargetRole.BACKUP, error=VerifyError) as (b_target, b_conn):
        b_catalog = load_catalog(b_conn)
        when = backup_time or backup_time_of(b_conn)
    with read_only_snapshot(live, TargetRole.PRODUCTION, error=VerifyError) as (l_target, l_conn):
        l_catalog = load_catalog(l_conn)
    b_names, l_names = _chosen(b_catalog, l_catalog, tables)
    only_live = sorted(l_names - b_names)
    only_backup = sorted(b_names - l_names)
    common = sorted(b_names & l_names)
    columns = [d for name in common for d in _column_differences(b_catalog.tables[name], l_catalog.tables[name])]
    checks = [
        _check_table(b_target, l_target, b_catalog.tables[name], l_catalog.tables[name], created_column, when, sample)
        for name in common
    ]
    newest = max((c for c in checks if c.newest_in_backup), key=lambda c: c.newest_in_backup, default=None)  # type: ignore[arg-type,return-value]
    result = VerifyResult(
        backup=b_target.name,
        live=l_target.name,
        backup_time=when,
        newest_row_in_backup=newest.newest_in_backup if newest else None,
        newest_row_table=newest.table if newest else None,
        tables=checks,
        tables_only_in_live=only_live,
        tables_only_in_backup=only_backup,
        column_differences=columns,
        findings=[],
    )
    result.findings = _findings(result, created_column)
    return result


def verify_dump(
    dump: Path,
    live: Side,
    *,
    tables: Sequence[str] = (),
    created_column: str | None = None,
    backup_time: datetime | None = None,
    server_dsn: str | None = None,
    database: str | None = None,
    progress: Progress | None = None,
) -> VerifyResult:
    """Restore `dump` (only `tables` and what they reference, when named) into a replica that lives for the check,
    compare it with live, then drop it."""
    replica = provision(
        Path(dump), server_dsn=server_dsn, tables=tables, backup_time=backup_time, database=database, progress=progress
    )
    try:
        backup = Target(name=Path(dump).name, dsn=replica.dsn, role=TargetRole.BACKUP)
        return verify_backup(backup, live, tables=tables, created_column=created_column, backup_time=backup_time)
    finally:
        destroy(replica.name)


# ---------------------------------------------------------------------------------------------------------------


def _chosen(b_catalog: Catalog, l_catalog: Catalog, tables: Sequence[str]) -> tuple[set[str], set[str]]:
    if not tables:
        return set(b_catalog.tables), set(l_catalog.tables)
    b_names: set[str] = set()
    l_names: set[str] = set()
    for name in tables:
        found = False
        for catalog, names in ((b_catalog, b_names), (l_catalog, l_names)):
            try:
                names.add(catalog.table(name).qualified)
                found = True
            except RewindError:
                continue
        if not found:
            raise VerifyError(f"No table {name!r} in the backup or in live; check the name, e.g. public.{name}.")
    return b_names, l_names


def _column_differences(backup: Table, live: Table) -> list[ColumnDifference]:
    b_types = {c.name: c.type_name for c in backup.columns}
    l_types = {c.name: c.type_name for c in live.columns}
    return [
        ColumnDifference(
            table=backup.qualified, column=name, backup_type=b_types.get(name), live_type=l_types.get(name)
        )
        for name in sorted(b_types.keys() | l_types.keys())
        if b_types.get(name) != l_types.get(name)
    ]


def _created_column(backup: Table, live: Table, named: str | None) -> tuple[str | None, str | None]:
    """The creation column both sides have with a time type, and otherwise why there is none."""
    both = {c.name: c.type_name for c in live.columns if c.type_name in _TIME_TYPES}
    both = {n: t for n, t in both.items() if any(c.name == n and c.type_name == t for c in backup.columns)}
    if named:
        return (named, None) if named in both else (None, f"no {named} column of a time type on both sides")
    found = next((name for name in CREATED_COLUMNS if name in both), None)
    return (found, None) if found else (None, "no creation column (created_at, inserted_at, ...); pass one")


def _check_table(
    b_target: Target,
    l_target: Target,
    b_table: Table,
    l_table: Table,
    named: str | None,
    when: datetime | None,
    sample: int,
) -> TableCheck:
    column, why = _created_column(b_table, l_table, named)
    check = TableCheck(
        table=b_table.qualified,
        created_column=column,
        missing_before_backup=0,
        sample_keys=[],
        newest_in_backup=None,
        newest_in_live_before_backup=None,
        unchecked=why,
    )
    if column is None:
        return check
    check.newest_in_backup = _newest(b_target, b_table, column, None)
    if when is None:
        check.unchecked = "no backup time: pass --backup-time"
        return check
    check.newest_in_live_before_backup = _newest(l_target, l_table, column, when)
    try:
        b_table.key_columns()
    except RewindError:
        check.unchecked = "no primary or unique key to match rows by"
        return check
    where = sql.SQL("{} < {}").format(sql.Identifier(column), sql.Literal(when)).as_string(None)
    result = diff_table(b_target, l_target, b_table.qualified, where=where)
    check.missing_before_backup = len(result.added)
    check.sample_keys = [list(key) for key in result.added[:sample]]
    return check


def _newest(target: Target, table: Table, column: str, before: datetime | None) -> datetime | None:
    query = sql.SQL("SELECT max({c})::timestamptz FROM {t}").format(c=sql.Identifier(column), t=table.ident)
    if before is not None:
        query = sql.SQL("{} WHERE {} < {}").format(query, sql.Identifier(column), sql.Literal(before))
    with read_only_snapshot(target, target.role, error=VerifyError) as (_, conn):
        try:
            row = conn.execute(query).fetchone()
        except psycopg.Error as exc:
            raise VerifyError(f"{target.name}: cannot read {table.qualified}.{column}: {exc}") from exc
    return row[0] if row else None


def _findings(result: VerifyResult, named: str | None) -> list[str]:
    findings: list[str] = []
    when = result.backup_time
    if when is None:
        findings.append("The backup has no recorded time, so its rows were not checked: pass --backup-time.")
    for check in result.tables:
        if check.missing_before_backup:
            keys = "; ".join(", ".join(str(v) for v in key) for key in check.sample_keys)
            more = " ..." if check.missing_before_backup > len(check.sample_keys) else ""
            findings.append(
                f"{check.table}: {check.missing_before_backup} row(s) created before the backup time are missing "
                f"from the backup (keys: {keys}{more})."
            )
        if when is not None and check.newest_in_backup is not None and check.newest_in_backup > when:
            findings.append(
                f"{check.table}: the backup holds a row created at {check.newest_in_backup.isoformat()}, after its "
                f"backup time {when.isoformat()}: the backup time is wrong."
            )
        if named and check.unchecked:
            findings.append(f"{check.table}: not checked, {check.unchecked}.")
    if result.tables_only_in_live:
        findings.append(f"Tables in live that the backup lacks: {', '.join(result.tables_only_in_live)}.")
    if result.tables_only_in_backup:
        findings.append(f"Tables in the backup that live no longer has: {', '.join(result.tables_only_in_backup)}.")
    for diff in result.column_differences:
        if diff.backup_type is None:
            findings.append(f"{diff.table}.{diff.column} ({diff.live_type}) is in live but not in the backup.")
        elif diff.live_type is None:
            findings.append(f"{diff.table}.{diff.column} ({diff.backup_type}) is in the backup but not in live.")
        else:
            findings.append(
                f"{diff.table}.{diff.column} is {diff.backup_type} in the backup and {diff.live_type} in live."
            )
    return findings
