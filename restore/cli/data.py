"""Subcommands; see restore/cli/__init__.py for the contract."""

import argparse
import json
import shlex
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from restore.cli import TargetsProvider


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]", targets: TargetsProvider) -> None:
    """Adds this module's subcommands."""
    _register_diff(subparsers, targets)
    _register_gap(subparsers, targets)
    _register_deps(subparsers, targets)
    _register_plan(subparsers, targets)
    _register_apply(subparsers, targets)


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


# --- deps, plan and apply ----------------------------------------------------------------------------------------

_SHOWN_ROWS = 50


def _add_root_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backup", required=True, help="backup target name or DSN")
    parser.add_argument("--live", required=True, help="live target name or DSN (only read)")
    parser.add_argument("--table", required=True, help="the table of the root rows, e.g. public.customers")
    roots = parser.add_mutually_exclusive_group(required=True)
    roots.add_argument("--deleted", action="store_true", help="the roots are the rows deleted since the backup")
    roots.add_argument("--keys", type=Path, metavar="FILE", help="the roots' keys (JSON or one per line)")
    parser.add_argument("--where", help="with --deleted: only deleted rows matching this SQL condition")


def _sides_and_roots(args: argparse.Namespace, targets: TargetsProvider) -> tuple[Any, Any, list[tuple[Any, ...]]]:
    """(backup, live, root keys) from --backup/--live and --deleted [--where] or --keys."""
    from restore.errors import RewindError
    from restore.keys import deleted_keys, read_keys_file, table_key
    from restore.targets import TargetRole, resolve_target

    if args.where and not args.deleted:
        raise RewindError("--where selects deleted rows; use it with --deleted, or put the keys in --keys FILE.")
    known = targets()
    backup = resolve_target(args.backup, known, TargetRole.BACKUP)
    live = resolve_target(args.live, known, TargetRole.PRODUCTION)
    if args.deleted:
        return backup, live, deleted_keys(backup, live, args.table, where=args.where)
    return backup, live, read_keys_file(args.keys, len(table_key(backup, args.table)))


def _print_counts(counts: dict[str, dict[str, int]]) -> None:
    for table, per in counts.items():
        print(f"  {table}: " + ", ".join(f"{n} {what}" for what, n in per.items()))


def _register_deps(sub: "argparse._SubParsersAction[argparse.ArgumentParser]", targets: TargetsProvider) -> None:
    parser = sub.add_parser("deps", help="rows that reference the root rows (any depth) and the parents they need")
    _add_root_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print every row as JSON")

    def run(args: argparse.Namespace) -> int:
        from restore.graph import build_graph

        backup, live, roots = _sides_and_roots(args, targets)
        report = build_graph(backup, live, args.table, roots).report()
        if args.json:
            print(report.model_dump_json())
            return 0
        print(f"{len(report.rows)} row(s) from {len(roots)} root key(s) of {report.root_table}:")
        _print_counts(report.counts)
        for row in report.rows[:_SHOWN_ROWS]:
            via = f" <- {row.reached_from.table} via {row.reached_from.constraint}" if row.reached_from else " (root)"
            changed = f" ({', '.join(row.changed_columns)})" if row.changed_columns else ""
            print(f"  {row.table} {_key_text(list(row.key))}: {row.status}{changed}{via}")
        if len(report.rows) > _SHOWN_ROWS:
            print(f"  (+{len(report.rows) - _SHOWN_ROWS} more; --json lists them all)")
        if report.roots_not_in_backup:
            print(f"{report.roots_not_in_backup} root key(s) are not in the backup.")
        return 0

    parser.set_defaults(func=run)


def _register_plan(sub: "argparse._SubParsersAction[argparse.ArgumentParser]", targets: TargetsProvider) -> None:
    parser = sub.add_parser("plan", help="write the SQL that restores the root rows (and an undo script)")
    _add_root_arguments(parser)
    parser.add_argument("--with-dependents", action="store_true", help="also restore rows that reference the roots")
    parser.add_argument(
        "--revert",
        action="append",
        default=[],
        metavar="COLUMNS",
        help="changed columns to set back to backup values, e.g. payments.customer_id (comma-separated, repeatable)",
    )
    parser.add_argument("--out", type=Path, required=True, metavar="FILE", help="where to write the plan")
    parser.add_argument("--undo", type=Path, metavar="FILE", help="where to write the undo script")
    parser.add_argument("--json", action="store_true", help="print a summary as JSON")

    def run(args: argparse.Namespace) -> int:
        from restore.plan import make_plan

        backup, live, roots = _sides_and_roots(args, targets)
        plan = make_plan(
            backup,
            live,
            args.table,
            roots,
            with_dependents=args.with_dependents,
            revert=args.revert,
            command=_plan_command(args),
        )
        plan.write(args.out, args.undo)
        summary = {
            "out": str(args.out),
            "undo": str(args.undo) if args.undo else None,
            "backup_time": plan.backup_time.isoformat() if plan.backup_time else None,
            "counts": plan.counts,
            "steps": [s.model_dump() for s in plan.steps],
        }
        if args.json:
            print(json.dumps(summary))
            return 0
        print(f"plan written to {args.out}" + (f", undo to {args.undo}" if args.undo else ""))
        _print_counts(plan.counts)
        print(f"Dry-run it with: rewind apply {args.out} --target {_quoted_target(args.live)}")
        return 0

    parser.set_defaults(func=run)


def _quoted_target(value: str) -> str:
    from restore.targets import looks_like_dsn, mask_dsn

    return "LIVE" if looks_like_dsn(value) and mask_dsn(value) != value else shlex.quote(value)


def _plan_command(args: argparse.Namespace) -> str:
    """The command line that made a plan, rebuilt from the parsed arguments (DSN passwords are masked later)."""
    parts = ["rewind", "plan", "--backup", args.backup, "--live", args.live, "--table", args.table]
    parts += ["--deleted"] if args.deleted else ["--keys", str(args.keys)]
    parts += ["--where", args.where] if args.where else []
    parts += ["--with-dependents"] if args.with_dependents else []
    for columns in args.revert:
        parts += ["--revert", columns]
    parts += ["--out", str(args.out)] + (["--undo", str(args.undo)] if args.undo else [])
    return shlex.join(parts)


def _register_apply(sub: "argparse._SubParsersAction[argparse.ArgumentParser]", targets: TargetsProvider) -> None:
    parser = sub.add_parser("apply", help="dry-run a plan (rolled back), or run it with --execute")
    parser.add_argument("file", type=Path, help="the SQL script, e.g. from rewind plan")
    parser.add_argument("--target", required=True, help="production target name or DSN")
    parser.add_argument("--execute", action="store_true", help="commit (after a dry run whose counts must match)")
    parser.add_argument("--statement-timeout", type=float, default=30.0, metavar="S", help="seconds (default 30)")
    parser.add_argument("--lock-timeout", type=float, default=5.0, metavar="S", help="seconds (default 5)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")

    def run(args: argparse.Namespace) -> int:
        from restore.apply import dry_run, execute
        from restore.errors import RewindError
        from restore.targets import TargetRole, require_role, resolve_target

        target = require_role(resolve_target(args.target, targets(), TargetRole.PRODUCTION), TargetRole.PRODUCTION)
        try:
            script = args.file.read_text(encoding="utf-8")
        except OSError as exc:
            raise RewindError(f"Cannot read {args.file}: {exc.strerror}. Check the path.") from exc
        timeouts = {"statement_timeout_s": args.statement_timeout, "lock_timeout_s": args.lock_timeout}
        result = dry_run(target, script, **timeouts)
        if args.execute:

            def announce(xid: int) -> None:
                print(f"committing transaction {xid}", file=sys.stderr, flush=True)

            result = execute(target, script, expected_counts=result.counts, on_xid=announce, **timeouts)
        if args.json:
            print(result.model_dump_json())
            return 0
        for s in result.statements:
            print(f"{s.index:>5} {s.rowcount:>8}  {s.statement}")
        if result.committed:
            print(f"committed transaction {result.xid}: {result.rows_affected} row(s) in {result.seconds} s")
        else:
            print(f"dry run rolled back, nothing changed: {result.rows_affected} row(s) would be affected.")
            print("Add --execute to commit.")
        return 0

    parser.set_defaults(func=run)
