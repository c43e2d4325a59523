"""`rewind import slack-export EXPORT.zip --channel NAME [--json]`: rebuild an incident's timeline from an export.

The export is read and validated whole before anything is written, so a malformed one records nothing.
`bot.cli` adds it with `register(subparsers, settings_loader)`.
"""

import argparse
import json
from collections.abc import Callable
from pathlib import Path

from bot.config import Settings

SettingsLoader = Callable[[], Settings]


def register(
    subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]", settings_loader: SettingsLoader
) -> None:
    parser = subparsers.add_parser("import", help="rebuild an incident's timeline from history")
    kinds = parser.add_subparsers(dest="import_command", required=True, metavar="SOURCE")
    export = kinds.add_parser("slack-export", help="a Slack workspace export (.zip) and one of its channels")
    export.add_argument("export", type=Path, metavar="EXPORT.zip", help="the export as Slack lets you download it")
    export.add_argument("--channel", required=True, metavar="NAME", help="the incident channel's name (or id)")
    export.add_argument(
        "--bot",
        action="append",
        default=[],
        metavar="ID",
        help="a user, bot or app id the bot posted under (repeatable); needed only for its messages in exports taken "
        "before its replies carried metadata",
    )
    export.add_argument("--json", action="store_true", help="print the result as JSON")
    export.set_defaults(func=lambda args: run_slack_export(args, settings_loader()))


def run_slack_export(args: argparse.Namespace, settings: Settings) -> int:
    from bot.importing.export import read_slack_export
    from bot.importing.receipts import BotIdentity
    from bot.importing.rules import HistoryImporter
    from bot.store import open_store

    history = read_slack_export(args.export, args.channel)
    store = open_store(settings.database_url)
    try:
        result = HistoryImporter(store, settings).import_history(
            history.channel, history.messages, history.name_of, bot=BotIdentity.of(*args.bot)
        )
    finally:
        store.dispose()
    if args.json:
        print(json.dumps({"channel": history.channel.name, **result.as_dict()}))
    else:
        print(f"#{history.channel.name}: {result.summary()}")
    return 0
