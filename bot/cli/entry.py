"""The `rewind` command: run the bot, migrate the store, the restore toolkit's subcommands, the agent server."""

import argparse
import sys
from collections.abc import Sequence

from bot.cli.importing import register as register_import
from bot.cli.mcp import register as register_mcp
from bot.cli.postmortem import register as register_postmortem
from bot.config import ConfigError, Settings, load_settings
from bot.journal.cli import register as register_journal
from bot.manifest import SLASH_COMMAND, with_slash_command
from restore.cli import register as register_restore
from restore.errors import RewindError
from restore.fence import Hit
from restore.targets import Target, mask_dsn


def _targets() -> dict[str, Target]:
    return load_settings().all_targets()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rewind", description="Incident scribe and restore assistant.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the bot (Socket Mode, HTTP, or a terminal channel without tokens)")
    run.set_defaults(func=cmd_run)

    demo = sub.add_parser("demo", help="a whole incident to restore, on an embedded database (nothing to configure)")
    demo.set_defaults(func=cmd_demo)

    db = sub.add_parser("db", help="state store maintenance")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    db_sub.add_parser("upgrade", help="apply the store's migrations").set_defaults(func=cmd_db_upgrade)

    register_restore(sub, _targets, request=_request_approval)
    register_import(sub, load_settings)
    register_postmortem(sub, load_settings)
    register_mcp(sub, load_settings)
    register_journal(sub, load_settings)
    return parser


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from bot.store import open_store

    store = open_store(load_settings().database_url)
    print(f"store at {mask_dsn(store.url)} is up to date")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from bot.runtime.start import run

    settings: Settings = load_settings()
    return run(settings)


def cmd_demo(args: argparse.Namespace) -> int:
    from bot.logging import configure_logging
    from bot.runtime.demo import run_demo

    configure_logging(quiet=True)
    return run_demo(sys.stdin, sys.stdout, interactive=sys.stdin.isatty())


def _request_approval(argv: list[str], hits: list[Hit]) -> int:
    """`rewind exec --request`: loaded only when it runs, since it needs the store and Slack."""
    from bot.cli.scripts import request_and_run

    return request_and_run(load_settings(), argv, hits)


def _slash_command() -> str:
    """The configured slash command, for error messages that name it; the default when settings can't be read."""
    try:
        return load_settings().slash_command
    except ConfigError:
        return SLASH_COMMAND


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"rewind: {mask_dsn(str(exc))}", file=sys.stderr)
        return 2
    except RewindError as exc:
        print(f"rewind: {with_slash_command(mask_dsn(str(exc)), _slash_command())}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
