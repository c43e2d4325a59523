"""`rewind replica up|ls|down` and `rewind query`; see restore/cli/__init__.py for the contract."""

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic_core import to_jsonable_python

from restore.cli import TargetsProvider
from restore.clusterdump import SkippedItem
from restore.errors import RewindError
from restore.query import DEFAULT_MAX_BYTES, DEFAULT_MAX_VALUE_CHARS, QueryResult, run_read_only
from restore.replica import Replica, destroy, ensure_running, get_record, list_replicas, provision, provision_from
from restore.targets import Target, TargetRole, mask_dsn, require_role, resolve_target


class ReplicaOutput(BaseModel):
    """What `--json` prints about a replica: the DSN with its password masked."""

    name: str
    dsn: str
    backup_time: datetime | None
    tables: list[str]
    seconds: float
    backup_time_source: str | None = None
    source_database: str | None = None
    roles_created: list[str] = []
    skipped_extensions: list[str] = []
    skipped: list[SkippedItem] = []

    @classmethod
    def of(cls, replica: Replica) -> "ReplicaOutput":
        return cls(**{**replica.model_dump(), "dsn": mask_dsn(replica.dsn)})


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]", targets: TargetsProvider) -> None:
    """Adds `replica` (up, ls, down) and `query`."""
    replica = subparsers.add_parser("replica", help="scratch databases restored from a pg_dump")
    actions = replica.add_subparsers(dest="replica_command", required=True, metavar="ACTION")

    up = actions.add_parser(
        "up", help="restore a dump, or copy a live database, (or some of its tables) into a new scratch database"
    )
    up.add_argument(
        "dump",
        type=Path,
        nargs="?",
        help="pg_dump output (custom, directory, tar, plain SQL) or a cluster dump (pg_dumpall, Supabase), maybe .gz",
    )
    up.add_argument(
        "--from",
        dest="source",
        metavar="TARGET",
        help="copy this live database (replica or production target, only read) instead of restoring a dump",
    )
    up.add_argument(
        "--database", help="cluster dumps: the database to restore (default: the one with tables; postgres on Supabase)"
    )
    up.add_argument("--table", action="append", default=[], dest="tables", help="restore only this table (repeat)")
    up.add_argument("--server", help="DSN or target of the server for the scratch database (default: own cluster)")
    up.add_argument("--name", help="replica name (default: from the dump's file name)")
    up.add_argument("--jobs", type=int, help="parallel restore jobs (custom and directory dumps)")
    up.add_argument(
        "--backup-time",
        type=_aware_time,
        help="the backup's exact time with its zone (ISO 8601), when the dump's own time is ambiguous",
    )
    up.add_argument("--json", action="store_true", help="print the result as JSON")
    up.set_defaults(func=lambda args: cmd_up(args, targets))

    ls = actions.add_parser("ls", help="list replicas")
    ls.add_argument("--json", action="store_true", help="print JSON")
    ls.set_defaults(func=cmd_ls)

    down = actions.add_parser("down", help="drop a replica's database, or stop and delete its private cluster")
    down.add_argument("name")
    down.set_defaults(func=cmd_down)

    query = subparsers.add_parser("query", help="run a read-only query on a replica or backup target")
    query.add_argument("target", help="target name, replica name, or DSN")
    query.add_argument("sql", help="SELECT, VALUES, TABLE, EXPLAIN (without ANALYZE) or SHOW")
    query.add_argument("--limit", type=int, default=100, help="rows to return at most (default 100)")
    query.add_argument("--timeout", type=float, default=10.0, help="statement timeout in seconds (default 10)")
    query.add_argument(
        "--max-bytes",
        type=int,
        default=DEFAULT_MAX_BYTES,
        help=f"stop at about this many bytes (default {DEFAULT_MAX_BYTES:,})",
    )
    query.add_argument(
        "--max-value-chars",
        type=int,
        default=DEFAULT_MAX_VALUE_CHARS,
        help=f"cut longer values on the server (default {DEFAULT_MAX_VALUE_CHARS:,} characters)",
    )
    query.add_argument("--json", action="store_true", help="print the result as JSON")
    query.set_defaults(func=lambda args: cmd_query(args, targets))


def cmd_up(args: argparse.Namespace, targets: TargetsProvider) -> int:
    if (args.dump is None) == (args.source is None):
        raise RewindError("Give a dump file or --from TARGET (one of them): `rewind replica up DUMP` or `--from NAME`.")
    if args.source is not None and (args.backup_time or args.database):
        raise RewindError(
            "--from copies one snapshot of one database; its time is the backup time. Drop "
            "--backup-time and --database."
        )
    server = _server_dsn(args.server, targets) if args.server else None
    progress = _stderr_progress if sys.stderr.isatty() else None
    if args.source is not None:
        source = resolve_target(args.source, targets(), TargetRole.REPLICA)
        replica = provision_from(
            source, server_dsn=server, tables=args.tables, name=args.name, jobs=args.jobs, progress=progress
        )
    else:
        replica = provision(
            args.dump,
            server_dsn=server,
            tables=args.tables,
            name=args.name,
            jobs=args.jobs,
            progress=progress,
            backup_time=args.backup_time,
            database=args.database,
        )
    shown = ReplicaOutput.of(replica)
    if args.json:
        print(shown.model_dump_json())
    else:
        print(_describe(shown))
    return 0


def _aware_time(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO time; try 2026-01-22T04:00:12+00:00") from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no zone; add one, e.g. {text}+00:00")
    return value


def _server_dsn(name_or_dsn: str, targets: TargetsProvider) -> str:
    # A scratch database is never created on a production server: that would be a write outside a proposal.
    target = resolve_target(name_or_dsn, targets(), TargetRole.REPLICA)
    return require_role(target, TargetRole.REPLICA, TargetRole.BACKUP).dsn


def cmd_ls(args: argparse.Namespace) -> int:
    shown = [ReplicaOutput.of(replica) for replica in list_replicas()]
    if args.json:
        print(json.dumps([item.model_dump(mode="json") for item in shown]))
    elif not shown:
        print("no replicas (create one with `rewind replica up DUMP`)")
    for item in [] if args.json else shown:
        print(_describe(item))
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    destroy(args.name)
    print(f"replica {args.name} removed")
    return 0


def cmd_query(args: argparse.Namespace, targets: TargetsProvider) -> int:
    result = run_read_only(
        backup_target(args.target, targets),
        args.sql,
        limit=args.limit,
        timeout_s=args.timeout,
        max_bytes=args.max_bytes,
        max_value_chars=args.max_value_chars,
    )
    if args.json:
        print(json.dumps({**to_jsonable_python(result, fallback=str), "notes": result.notes()}))
    else:
        print(_render_table(result))
        for note in result.notes():
            print(note, file=sys.stderr)
    return 0


def backup_target(name: str, targets: TargetsProvider) -> Target:
    """A configured target, else a replica from `rewind replica ls` (a backup), else an ad-hoc DSN (a replica)."""
    configured = targets()
    if name not in configured and not ("://" in name or "=" in name):
        record = get_record(name)
        ensure_running(record)
        return Target(name=record.name, dsn=record.dsn, role=TargetRole.BACKUP)
    return resolve_target(name, configured, TargetRole.REPLICA)


def _describe(replica: ReplicaOutput) -> str:
    when = replica.backup_time.isoformat() if replica.backup_time else "unknown"
    if replica.backup_time_source:
        when += f" (from the {replica.backup_time_source.replace('-', ' ')})"
    tables = ", ".join(replica.tables) or "none"
    lines = [f"{replica.name}  {replica.dsn}", f"  backup time {when}; {len(replica.tables)} table(s): {tables}"]
    if replica.roles_created:
        lines.append(f"  roles created (NOLOGIN): {', '.join(replica.roles_created)}")
    if replica.skipped_extensions:
        lines.append(f"  extensions this server lacks, skipped: {', '.join(replica.skipped_extensions)}")
    for item in replica.skipped:
        if item.kind != "EXTENSION":
            lines.append(f"  skipped {item.kind} {item.name}: {item.reason}")
    return "\n".join(lines)


def _render_table(result: QueryResult) -> str:
    cut = {(c.row, c.column_index) for c in result.cut_values}
    cells = [
        [_cell(value) + (" [cut]" if (r, c) in cut else "") for c, value in enumerate(row)]
        for r, row in enumerate(result.rows)
    ]
    widths = [max([len(col), *(len(row[i]) for row in cells)]) for i, col in enumerate(result.columns)]
    lines = [" | ".join(col.ljust(w) for col, w in zip(result.columns, widths, strict=True))]
    lines.append("-+-".join("-" * w for w in widths))
    lines += [" | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in cells]
    more = " (truncated; see below)" if result.truncated else ""
    lines.append(f"({result.row_count} row{'s' if result.row_count != 1 else ''}{more}, {result.seconds:.3f}s)")
    return "\n".join(lines)


def _cell(value: Any) -> str:
    return "NULL" if value is None else str(value)


def _stderr_progress(message: str) -> None:
    print(f"rewind: {message}", file=sys.stderr, flush=True)
