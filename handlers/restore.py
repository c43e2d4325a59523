"""Slash command handlers for restore work (queries, diffs, plans, proposals); merged into handlers.commands."""

from collections.abc import Callable
from typing import Any

from slack_sdk import WebClient

from bot.services import Services
from handlers.blocks import Reply

Handler = Callable[[Services, WebClient, Any, Any], Reply]

HANDLERS: dict[type, Handler] = {}
