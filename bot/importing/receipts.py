"""The bot's own messages in a channel's history, recognised by who posted them and what the bot attached to them,
never by their wording.

Every public reply to a command carries Slack message metadata (`receipt_metadata`): its event type marks the
message as the bot's, and its payload names the command it confirms (`command_signature`). Only an app can attach
metadata, so a reply's wording can change freely and an import still knows the bot saw that command live. The bot's
other messages (a header, import progress, an older reply without metadata) are recognised by identity: the user, bot
and app ids the caller knows (auth.test for the live history, `--bot` for an export), and those of whatever posted a
message carrying our metadata.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from bot.grammar import commands as grammar
from bot.importing.messages import SlackMessage
from bot.scribe.runofshow import mention

EVENT_TYPE = "rewind_receipt"


def command_signature(command: grammar.Command) -> str | None:
    """What a command recorded, for the commands an import would apply: the same command gives the same signature."""
    if isinstance(command, grammar.Note):
        return f"note|{command.text}"
    if isinstance(command, grammar.FlagRaise):
        return f"flag|{command.text}"
    if isinstance(command, grammar.FlagResolve):
        return f"resolve|{command.number}"
    if isinstance(command, grammar.SectionText):
        return f"{command.name}|{command.text}"
    if isinstance(command, grammar.TaskCreate):
        return f"{command.name}|{mention(command.owner)}|{command.text}"
    return None


def receipt_metadata(command: grammar.Command | None = None) -> dict[str, Any]:
    """chat.postMessage `metadata` for a message the bot posts; with `command`, the reply says it confirms it."""
    signature = command_signature(command) if command is not None else None
    return {"event_type": EVENT_TYPE, "event_payload": {"confirms": signature} if signature else {}}


def is_receipt(message: SlackMessage) -> bool:
    return message.metadata is not None and message.metadata.event_type == EVENT_TYPE


@dataclass(frozen=True)
class BotIdentity:
    """Ids the bot posts under: its bot user (U…), its bot (B…) and its app (A…)."""

    ids: frozenset[str] = frozenset()

    @classmethod
    def of(cls, *ids: str | None) -> "BotIdentity":
        return cls(frozenset(i for i in ids if i))

    def posted(self, message: SlackMessage) -> bool:
        return bool({message.user, message.bot_id, message.app} & self.ids)


@dataclass(frozen=True)
class OwnMessages:
    """The bot's messages in a history (by ts), and the signatures of the commands its replies confirmed."""

    ts: frozenset[str]
    confirmed: frozenset[str]


UNKNOWN_BOT = BotIdentity()  # an export from a workspace whose bot ids nobody gave: its receipts identify it


def own_messages(messages: Iterable[SlackMessage], identity: BotIdentity = UNKNOWN_BOT) -> OwnMessages:
    messages = list(messages)
    receipts = [m for m in messages if is_receipt(m)]
    learned = BotIdentity(identity.ids | {i for m in receipts for i in (m.user, m.bot_id, m.app) if i})
    ours = frozenset(m.ts for m in messages if is_receipt(m) or learned.posted(m))
    confirmed = frozenset(
        signature
        for m in receipts
        if m.metadata is not None and isinstance(signature := m.metadata.event_payload.get("confirms"), str)
    )
    return OwnMessages(ours, confirmed)
