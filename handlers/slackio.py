"""Small Web API helpers the listeners share: read a message, its permalink, a user's name, confirm."""

import logging
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.importing.receipts import receipt_metadata
from bot.scribe.timeline import MessageRef, Recorded
from bot.services import Services
from bot.store.models import EntryKind

log = logging.getLogger("rewind.slack")


def fetch_message(client: WebClient, channel_id: str, ts: str) -> dict[str, Any] | None:
    """One message by ts: channel history first, then the thread it may be a reply in."""
    try:
        history = client.conversations_history(channel=channel_id, latest=ts, oldest=ts, inclusive=True, limit=1)
        for message in history.get("messages", []):
            if message.get("ts") == ts:
                return message
        replies = client.conversations_replies(channel=channel_id, ts=ts, limit=1, inclusive=True)
        for message in replies.get("messages", []):
            if message.get("ts") == ts:
                return message
    except SlackApiError as exc:
        log.warning("cannot read message %s in %s: %s", ts, channel_id, exc.response.get("error"))
    return None


def permalink(client: WebClient, channel_id: str, ts: str) -> str | None:
    try:
        return client.chat_getPermalink(channel=channel_id, message_ts=ts).get("permalink")
    except SlackApiError:
        return None


def confirm_recorded(services: Services, client: WebClient, ref: MessageRef, recorded: Recorded) -> None:
    """A 📝 on a recorded note; a threaded reply for a flag, which has a number people will refer to."""
    try:
        if recorded.kind == EntryKind.FLAG:
            client.chat_postMessage(
                channel=ref.channel_id,
                thread_ts=ref.ts,
                text=f":large_yellow_circle: Yellow flag {recorded.flag_number} raised from this message.",
                metadata=receipt_metadata(),
            )
        else:
            client.reactions_add(channel=ref.channel_id, timestamp=ref.ts, name=services.settings.emoji_confirm)
    except SlackApiError as exc:
        log.info("confirmation skipped: %s", exc.response.get("error"))
