"""The `rewind` command: one module per command group; `entry` builds the parser and dispatches."""

from bot.cli.entry import main

__all__ = ["main"]
