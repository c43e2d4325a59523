"""The restore toolkit's `rewind` subcommands. `bot.cli` adds them to its parser with `register()`.

Each subcommand module exposes `register(subparsers, targets)` and sets `func(args) -> int` on its parsers.
`targets` returns the configured targets by name (the bot's settings own the configuration). `request`, when the
bot supplies it, is what `rewind exec --request` calls to ask for approval (see restore.cli.fence.RequestHandler).
"""

import argparse
from collections.abc import Callable, Mapping

from restore.targets import Target

TargetsProvider = Callable[[], Mapping[str, Target]]


def register(
    subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]",
    targets: TargetsProvider,
    request: Callable[..., int] | None = None,
) -> None:
    from restore.cli import backup, data, fence, replica

    replica.register(subparsers, targets)
    data.register(subparsers, targets)
    backup.register(subparsers, targets)
    fence.register(subparsers, targets, request)
