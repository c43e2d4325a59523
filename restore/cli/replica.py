"""Subcommands; see restore/cli/__init__.py for the contract."""

import argparse

from restore.cli import TargetsProvider


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]", targets: TargetsProvider) -> None:
    """Adds this module's subcommands."""
