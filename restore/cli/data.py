"""Subcommands; see restore/cli/__init__.py for the contract."""

import argparse
from datetime import UTC, datetime
from pathlib import Path

from restore.cli import TargetsProvider


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]", targets: TargetsProvider) -> None:
    """Adds this module's subcommands."""
    _register_diff(subparsers, targets)
    _register_gap(subparsers, targets)


# --- diff and gap ----------------------------------------------------------------------------------------------

_SHOWN_KEYS = 10


def _key_text(key: list[object]) -> str:
    return ", ".join(str(v) for v in key) if len(key) != 1 else str(key[0])


def _register_diff(sub: "argparse._SubParsersAction[argparse.ArgumentParser]", targets: TargetsProvider) -> None:
    parser = sub.add_parser("diff", help="rows deleted, added and changed in one table, backup vs live")
    parser.add_argument("--backup", required=True, help="backup target name or DSN")
    parser.add_argument("--live", required=True, help="live target name or DSN (only read)")
    parser.add_argument("--table", required=True, help="table, e.g. public.orders")
    parser.add_argument("--where", help="SQL condition applied to both sides (runs read-only)")
    parser.add_argument("--key", help="comma-separated key columns (default: the primary key)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")

    def run(args: argparse.Namespace) -> int:
        from restore.diff import diff_table
        from restore.targets import TargetRole, resolve_target

        known = targets()
        result = diff_table(
            resolve_target(args.backup, known, TargetRole.BACKUP),
            resolve_target(args.live, known, TargetRole.PRODUCTION),
            args.table,
            where=args.where,
            key=[c.strip() for c in args.key.split(",")] if args.key else None,
        )
        if args.json:
            print(result.model_dump_json())
            return 0
        c = result.counts
        print(
            f"{result.table} by ({', '.join(result.key)}): {c['deleted']} deleted, {c['added']} added, "
            f"{c['changed']} changed ({c['backup_rows']} rows in backup, {c['live_rows']} in live; "
            f"{c['buckets_differing']} of {c['buckets']} buckets differed)"
        )
        for label, keys in (("deleted", result.deleted), ("added", result.added)):
            if keys:
                more = f" (+{len(keys) - _SHOWN_KEYS} more)" if len(keys) > _SHOWN_KEYS else ""
                print(f"  {label}: {'; '.join(_key_text(k) for k in keys[:_SHOWN_KEYS])}{more}")
        for row in result.changed[:_SHOWN_KEYS]:
            print(f"  changed {_key_text(row.key)}: {', '.join(row.columns)}")
        if len(result.changed) > _SHOWN_KEYS:
            print(f"  (+{len(result.changed) - _SHOWN_KEYS} more changed)")
        return 0

    parser.set_defaults(func=run)


def _register_gap(sub: "argparse._SubParsersAction[argparse.ArgumentParser]", targets: TargetsProvider) -> None:
    parser = sub.add_parser("gap", help="live rows created after the backup that reference the affected rows")
    parser.add_argument("--backup", required=True, help="backup target name or DSN")
    parser.add_argument("--live", required=True, help="live target name or DSN (only read)")
    parser.add_argument("--table", required=True, help="the table of the affected (root) rows")
    roots = parser.add_mutually_exclusive_group(required=True)
    roots.add_argument("--deleted", action="store_true", help="the affected rows are those deleted since the backup")
    roots.add_argument("--keys", type=Path, metavar="FILE", help="the affected rows' keys (JSON or one per line)")
    parser.add_argument("--where", help="with --deleted: only deleted rows matching this SQL condition")
    parser.add_argument("--created-column", default="created_at", help="creation time column (default created_at)")
    parser.add_argument("--ids-file", type=Path, metavar="FILE", help="ids a migration log names (JSON or per line)")
    parser.add_argument("--backup-time", help="ISO time of the backup, if the backup database has none recorded")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")

    def run(args: argparse.Namespace) -> int:
        from restore.errors import RewindError
        from restore.gap import find_gap
        from restore.keys import read_keys_file, table_key
        from restore.targets import TargetRole, resolve_target

        if args.where and not args.deleted:
            raise RewindError("--where selects deleted rows; use it with --deleted, or put the keys in --keys FILE.")
        known = targets()
        backup = resolve_target(args.backup, known, TargetRole.BACKUP)
        live = resolve_target(args.live, known, TargetRole.PRODUCTION)
        key_len = len(table_key(backup, args.table)) if args.keys or args.ids_file else 0
        result = find_gap(
            backup,
            live,
            args.table,
            keys=read_keys_file(args.keys, key_len) if args.keys else None,
            where=args.where,
            created_column=args.created_column,
            ids=read_keys_file(args.ids_file, key_len) if args.ids_file else None,
            backup_time=_parse_time(args.backup_time) if args.backup_time else None,
        )
        if args.json:
            print(result.model_dump_json())
            return 0
        print(f"backup time {result.backup_time.isoformat()}")
        print(f"{len(result.created_after_backup)} live row(s) created after the backup reference the affected rows")
        for row in result.created_after_backup[:_SHOWN_KEYS]:
            ref = row.references
            print(f"  {row.table} {_key_text(row.key)} at {row.created_at} -> {ref.table} {_key_text(ref.key)}")
        if result.unchecked_tables:
            print(f"  not checked (no {args.created_column} column): {', '.join(result.unchecked_tables)}")
        if args.ids_file:
            missing = result.ids_not_in_backup
            print(f"{len(missing)} of {result.counts['ids_checked']} id(s) from {args.ids_file} are not in the backup")
            if missing:
                print(f"  {'; '.join(str(i) for i in missing[:_SHOWN_KEYS])}")
        return 0

    parser.set_defaults(func=run)


def _parse_time(value: str) -> datetime:
    from restore.errors import RewindError

    try:
        when = datetime.fromisoformat(value)
    except ValueError as exc:
        raise RewindError(f"--backup-time {value!r} is not an ISO time; pass e.g. 2026-01-22T04:00:00Z.") from exc
    return when if when.tzinfo else when.replace(tzinfo=UTC)
