"""Identifiers manifest.yml declares, shared by the app, shell mode and the tests.

Slack routes a shortcut or a slash command by the name the app's manifest gives it, so these must match manifest.yml
exactly; tests/bot/test_manifest.py reads the manifest and checks that they do.
"""

import re
from typing import Any

ADD_TO_TIMELINE = "add_to_timeline"  # the "Add to timeline" message shortcut's callback_id
SLASH_COMMAND = "/inc"  # the slash command; a workspace that renamed it sets REWIND_SLASH_COMMAND instead

_DEFAULT_COMMAND = re.compile(r"(?<![\w/])/inc\b")


def with_slash_command(text: str, slash: str) -> str:
    """Text written with the default command (`/inc note …`), as the workspace's command names it (`/incident note …`).

    Services and handlers word their help, errors and examples with the default name; every place that shows text
    to a person (Slack, the shell, the CLI, uploaded post-mortems) passes it through here with the configured name."""
    if slash == SLASH_COMMAND:
        return text
    # Code blocks are left alone: they hold SQL whose exact text a proposal's SHA-256 is computed over.
    parts = text.split("```")
    return "```".join(part if inside else _DEFAULT_COMMAND.sub(slash, part) for inside, part in _alternate(parts))


def _alternate(parts: list[str]) -> list[tuple[bool, str]]:
    return [(index % 2 == 1, part) for index, part in enumerate(parts)]


def with_slash_command_everywhere(value: Any, slash: str) -> Any:
    """The same, for every string inside a Slack payload (Block Kit blocks, attachments)."""
    if slash == SLASH_COMMAND:
        return value
    if isinstance(value, str):
        return with_slash_command(value, slash)
    if isinstance(value, dict):
        return {key: with_slash_command_everywhere(item, slash) for key, item in value.items()}
    if isinstance(value, list):
        return [with_slash_command_everywhere(item, slash) for item in value]
    return value
