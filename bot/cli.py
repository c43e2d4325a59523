"""The `rewind` command: run the bot, migrate the store, and the restore toolkit's subcommands."""

import argparse
import sys
from collections.abc import Sequence

from bot.config import ConfigError, Settings, load_settings
from bot.import_cli import register as register_import
from bot.journal.cli import register as register_journal
from bot.postmortem_cli import register as register_postmortem
from restore.cli import register as register_restore
from restore.errors import RewindError
from restore.targets import Target, mask_dsn


def _targets() -> dict[str, Target]:
    return load_settings().all_targets()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rewind", description="Incident scribe and restore assistant.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the bot (Socket Mode, HTTP, or a terminal channel without tokens)")
    run.set_defaults(func=cmd_run)

    db = sub.add_parser("db", help="state store maintenance")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    db_sub.add_parser("upgrade", help="apply the store's migrations").set_defaults(func=cmd_db_upgrade)

    register_restore(sub, _targets)
    register_import(sub, load_settings)
    register_postmortem(sub, load_settings)
    register_journal(sub, load_settings)
    return parser


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from bot.store import Store, upgrade

    settings = load_settings()
    store = Store(settings.database_url)
    upgrade(store)
    print(f"store at {mask_dsn(store.url)} is up to date")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from bot.runner import run

    settings: Settings = load_settings()
    return run(settings)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"rewind: {mask_dsn(str(exc))}", file=sys.stderr)
        return 2
    except RewindError as exc:
        print(f"rewind: {mask_dsn(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
