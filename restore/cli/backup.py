"""`rewind backup verify`: is a backup any good? See restore/cli/__init__.py for the contract.

Exit status: 0 when nothing was found, 3 when there are findings (1 and 2 stay for errors), so a scheduled check
can alert on it.
"""

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from restore.cli import TargetsProvider
from restore.cli.replica import _aware_time, _server_dsn, backup_target
from restore.errors import RewindError
from restore.targets import TargetRole, resolve_target

if TYPE_CHECKING:
    from restore.verify import VerifyResult

FINDINGS_EXIT = 3


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]", targets: TargetsProvider) -> None:
    """Adds `backup verify`."""
    backup = subparsers.add_parser("backup", help="check backups against the live database")
    actions = backup.add_subparsers(dest="backup_command", required=True, metavar="ACTION")
    verify = actions.add_parser(
        "verify",
        help="rows live had before the backup time that the backup lacks, schema drift, the backup's time",
        description="Exit status 0: nothing found; 3: findings; 1: an error.",
    )
    verify.add_argument(
        "dump", nargs="?", type=Path, help="a dump file to check (restored for the check, then dropped)"
    )
    verify.add_argument("--backup", help="a provisioned backup instead of a dump: replica name, backup target or DSN")
    verify.add_argument("--live", required=True, help="the live database: target name or DSN (only read)")
    verify.add_argument("--table", action="append", default=[], dest="tables", help="check only this table (repeat)")
    verify.add_argument(
        "--created-column", help="the column that says when a row was created (default: created_at, ...)"
    )
    verify.add_argument("--backup-time", type=_aware_time, help="the backup's time, when the backup records none")
    verify.add_argument("--server", help="where to restore a dump for the check (default: a private cluster)")
    verify.add_argument("--database", help="cluster dumps: the database to check (default: the one with tables)")
    verify.add_argument("--json", action="store_true", help="print the result as JSON")
    verify.set_defaults(func=lambda args: cmd_verify(args, targets))


def cmd_verify(args: argparse.Namespace, targets: TargetsProvider) -> int:
    from restore.verify import verify_backup, verify_dump  # the diff engine loads only for this command

    if (args.dump is None) == (args.backup is None):
        raise RewindError("Give a dump file or --backup NAME (one of them) to check against --live.")
    live = resolve_target(args.live, targets(), TargetRole.PRODUCTION)
    progress = _stderr_progress if sys.stderr.isatty() else None
    if args.dump is not None:
        result = verify_dump(
            args.dump,
            live,
            tables=args.tables,
            created_column=args.created_column,
            backup_time=args.backup_time,
            server_dsn=_server_dsn(args.server, targets) if args.server else None,
            database=args.database,
            progress=progress,
        )
    else:
        result = verify_backup(
            backup_target(args.backup, targets),
            live,
            tables=args.tables,
            created_column=args.created_column,
            backup_time=args.backup_time,
        )
    print(result.model_dump_json() if args.json else describe(result))
    return FINDINGS_EXIT if result.findings else 0


def describe(result: "VerifyResult") -> str:
    when = result.backup_time.isoformat() if result.backup_time else "unknown"
    lines = [f"backup {result.backup} vs live {result.live}; backup time {when}"]
    if result.newest_row_in_backup:
        lines.append(
            f"  newest row in the backup: {result.newest_row_in_backup.isoformat()} ({result.newest_row_table})"
        )
    for check in result.tables:
        if check.unchecked:
            lines.append(f"  {check.table}: not checked ({check.unchecked})")
        else:
            lines.append(
                f"  {check.table}: {check.missing_before_backup} row(s) created before the backup missing "
                f"(by {check.created_column})"
            )
    lines += [f"finding: {finding}" for finding in result.findings] or ["no findings"]
    return "\n".join(lines)


def _stderr_progress(message: str) -> None:
    print(f"rewind: {message}", file=sys.stderr, flush=True)
