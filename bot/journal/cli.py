"""`rewind journal start|sync|status|stop|prune|log|row` and `rewind undo`. `bot.cli` adds them with `register()`."""

import argparse
import shlex
import sys
from collections.abc import Callable
from datetime import UTC, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING

from bot.config import Settings, load_settings
from bot.errors import UsageError
from restore.targets import Target

if TYPE_CHECKING:  # the store and the journal load SQLAlchemy: only the command that runs pays for it
    from bot.store import Store

SettingsLoader = Callable[[], Settings]


def register(
    subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]", settings_loader: SettingsLoader = load_settings
) -> None:
    journal = subparsers.add_parser("journal", help="a change journal read from production's WAL (logical decoding)")
    sub = journal.add_subparsers(dest="journal_command", required=True, metavar="ACTION")

    start = sub.add_parser("start", help="create the publication and pgoutput slot, and the journal in the store")
    start.add_argument("--target", required=True, help="production target name or DSN")
    start.add_argument("--name", help="journal name (default: the target's name; required with a DSN)")
    start.add_argument("--table", action="append", default=[], help="only this table (repeatable; default: all)")
    start.add_argument(
        "--set-replica-identity-full", action="store_true", help="ALTER the tables that lack REPLICA IDENTITY FULL"
    )
    start.add_argument("--json", action="store_true")
    start.set_defaults(func=lambda a: _run(a, settings_loader, _start))

    for action, help_text, handler in (
        ("sync", "drain the slot into the journal (exactly once)", _sync),
        ("status", "retained WAL, lag and last sync", _status),
        ("stop", "drop the slot and the publication", _stop),
    ):
        parser = sub.add_parser(action, help=help_text)
        parser.add_argument("--name", help="journal name (default: the only one)")
        parser.add_argument("--json", action="store_true")
        parser.set_defaults(func=lambda a, h=handler: _run(a, settings_loader, h))

    prune = sub.add_parser("prune", help="delete journal rows older than an age")
    prune.add_argument("--name")
    prune.add_argument("--older-than", required=True, help="e.g. 7d, 12h")
    prune.add_argument("--json", action="store_true")
    prune.set_defaults(func=lambda a: _run(a, settings_loader, _prune))

    log = sub.add_parser("log", help="transactions with their inserts, updates and deletes per table")
    log.add_argument("--name")
    log.add_argument("--since", help="ISO time, or HH:MM today (UTC)")
    log.add_argument("--until", help="ISO time, or HH:MM today (UTC)")
    log.add_argument("--table", action="append", default=[])
    log.add_argument("--json", action="store_true")
    log.set_defaults(func=lambda a: _run(a, settings_loader, _log))

    row = sub.add_parser("row", help="every version of one row, with its transaction and time")
    row.add_argument("--name")
    row.add_argument("--table", required=True)
    row.add_argument("--key", required=True, help="42, a,1 or a JSON array")
    row.add_argument("--json", action="store_true")
    row.set_defaults(func=lambda a: _run(a, settings_loader, _row))

    undo = subparsers.add_parser("undo", help="a guarded SQL script reversing journal transactions (and its redo)")
    undo.add_argument("--journal", required=True, help="journal name")
    undo.add_argument("--xid", type=int, action="append", default=[], help="32-bit xid or pg_current_xact_id()")
    undo.add_argument("--since", help="ISO time, or HH:MM today (UTC)")
    undo.add_argument("--until", help="ISO time, or HH:MM today (UTC)")
    undo.add_argument("--table", action="append", default=[], help="with --since/--until: only these tables")
    undo.add_argument("--live", help="target to undo on (default: the journal's own target)")
    undo.add_argument("--out", required=True, type=Path, help="write the undo script here")
    undo.add_argument("--undo", type=Path, help="also write the redo script (reverses the undo) here")
    undo.add_argument("--json", action="store_true")
    undo.set_defaults(func=lambda a: _run(a, settings_loader, _undo))


Handler = Callable[[argparse.Namespace, "Store", dict[str, Target]], int]


def _run(args: argparse.Namespace, settings_loader: SettingsLoader, handler: Handler) -> int:
    settings = settings_loader()
    from bot.store import open_store

    store = open_store(settings.database_url)
    try:
        return handler(args, store, settings.all_targets())
    finally:
        store.dispose()


def parse_time(text: str | None) -> datetime | None:
    if text is None:
        return None
    raw = text.strip()
    try:
        if len(raw) <= 5 and ":" in raw:
            return datetime.combine(datetime.now(UTC).date(), time.fromisoformat(raw.zfill(5)), UTC)
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError as exc:
        raise UsageError(f"Cannot read the time {text!r}; write 10:42 or 2026-01-22T10:42:00Z.") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _print(args: argparse.Namespace, model: object, lines: list[str]) -> int:
    if args.json:
        print(model.model_dump_json())  # type: ignore[attr-defined]
    else:
        print("\n".join(lines))
    return 0


def _start(args: argparse.Namespace, store: "Store", targets: dict[str, Target]) -> int:
    from bot.journal import service

    r = service.start_journal(
        store, targets, args.target, name=args.name, tables=args.table,
        set_replica_identity_full=args.set_replica_identity_full,
    )  # fmt: skip
    tables = ", ".join(r.tables) if r.tables else "every table"
    lines = [f"journal {r.journal} started on {r.target} at {r.start_lsn}: slot {r.slot}, publication {r.publication}"]
    lines.append(f"  tables: {tables}")
    if r.identity_set_full:
        lines.append(f"  REPLICA IDENTITY FULL set on: {', '.join(r.identity_set_full)}")
    lines.append("  sync it often (rewind journal sync, or rewind run) and set max_slot_wal_keep_size on the server")
    return _print(args, r, lines)


def _sync(args: argparse.Namespace, store: "Store", targets: dict[str, Target]) -> int:
    from bot.journal import service

    r = service.sync_journal(store, targets, args.name)
    if not r.synced:
        return _print(args, r, [f"journal {r.journal} is being synced by {r.claimed_by}; nothing done"])
    s = r.stats
    assert s is not None
    return _print(
        args,
        r,
        [f"journal {r.journal}: {s.transactions} transactions, {s.changes} changes stored up to {s.end_lsn} "
         f"in {s.seconds:.1f} s" + (f" ({s.skipped_changes} already stored)" if s.skipped_changes else "")],
    )  # fmt: skip


def _mb(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MB"


def _status(args: argparse.Namespace, store: "Store", targets: dict[str, Target]) -> int:
    from bot.journal import service

    r = service.journal_status(store, targets, args.name)
    lines = [f"journal {r.journal} on {r.target}: {'running' if r.running else 'stopped'}"]
    if r.slot is not None and r.slot.exists:
        lines.append(
            f"  slot {r.slot.slot}: retains {_mb(r.slot.retained_wal_bytes)} of WAL, lag {_mb(r.slot.lag_bytes)}, "
            f"wal_status {r.slot.wal_status}, max_slot_wal_keep_size {r.slot.max_slot_wal_keep_size}"
        )
    elif r.slot is not None:
        lines.append(f"  slot {r.slot.slot} is MISSING on the target: start the journal again")
    lines.append(
        f"  last sync: {r.last_sync_at.isoformat() if r.last_sync_at else 'never'}; stored up to {r.stored_lsn}"
    )
    lines.append(f"  {r.transactions} transactions, {r.changes} changes")
    return _print(args, r, lines)


def _stop(args: argparse.Namespace, store: "Store", targets: dict[str, Target]) -> int:
    from bot.journal import service

    r = service.stop_journal(store, targets, args.name)
    what = "slot and publication dropped" if r.slot_dropped else "no slot was left; publication dropped"
    return _print(args, r, [f"journal {r.journal} stopped: {what}"])


def _prune(args: argparse.Namespace, store: "Store", targets: dict[str, Target]) -> int:
    from bot.journal import service

    r = service.prune_journal(store, args.name, service.parse_age(args.older_than))
    return _print(args, r, [f"journal {r.journal}: pruned {r.transactions} transactions, {r.changes} changes"])


def _log(args: argparse.Namespace, store: "Store", targets: dict[str, Target]) -> int:
    from bot.journal import service

    r = service.journal_log(
        store, args.name, since=parse_time(args.since), until=parse_time(args.until), tables=args.table
    )
    lines = []
    for t in r.transactions:
        lines.append(f"xid {t.xid}  {t.commit_time.isoformat()}")
        for table, c in t.tables.items():
            lines.append(f"  {table}: {c['insert']} inserts, {c['update']} updates, {c['delete']} deletes")
        lines += [f"  {table}: TRUNCATE (rows not in the journal)" for table in t.truncated]
    return _print(args, r, lines or ["no transactions"])


def _row(args: argparse.Namespace, store: "Store", targets: dict[str, Target]) -> int:
    from bot.journal import service

    r = service.row_history(store, args.name, args.table, args.key)
    lines = [f"{r.table} {r.key}: {len(r.versions)} versions"]
    for v in r.versions:
        lines.append(f"  xid {v.xid}  {v.commit_time.isoformat()}  {v.op}: {v.row if v.row is not None else '(gone)'}")
    return _print(args, r, lines)


def _undo(args: argparse.Namespace, store: "Store", targets: dict[str, Target]) -> int:
    if not args.xid and not (args.since and args.until):
        raise UsageError("Choose what to undo: --xid X [--xid Y ...], or --since T --until T [--table T ...].")
    from bot.journal.undo import plan_journal_undo

    undo = plan_journal_undo(
        store, targets, args.journal, xids=args.xid, since=parse_time(args.since), until=parse_time(args.until),
        tables=args.table, live=args.live, command=shlex.join(["rewind", *sys.argv[1:]]),
    )  # fmt: skip
    undo.write(args.out, args.undo)
    result = undo.result.model_copy(update={"out": str(args.out), "undo": str(args.undo) if args.undo else None})
    lines = [f"wrote {args.out}" + (f" and the redo {args.undo}" if args.undo else "")]
    for table, c in result.counts.items():
        lines.append(f"  {table}: insert {c['insert']}, update {c['update']}, delete {c['delete']}")
    for c in result.conflicts:
        lines.append(f"  CONFLICT {c.table} {c.key}: {c.reason}; left as it is")
    lines += [f"  TRUNCATE of {t.table} (xid {t.xid}): its rows are not in the journal" for t in result.truncated]
    lines += [f"  note: {n}" for n in result.notes]
    lines.append(f"  check it with: rewind apply {args.out} --target {result.live} (dry run), then with --execute")
    return _print(args, result, lines)
