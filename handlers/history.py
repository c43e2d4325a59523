"""`/inc import-history`: rebuild this channel's timeline from its history (conversations.history + replies).

The command is acknowledged at once; a background thread reads the history page by page (the client's
RateLimitErrorRetryHandler waits out HTTP 429s), keeps a progress message up to date, runs the importer and posts
the result. Merged into handlers.commands through `HANDLERS`.
"""

import logging
from collections.abc import Callable, Iterator
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.errors import RewindError
from bot.grammar.commands import ImportHistory
from bot.importing.messages import ChannelInfo, SlackMessage
from bot.importing.receipts import BotIdentity, receipt_metadata
from bot.importing.rules import HistoryImporter
from bot.services import Services
from handlers.blocks import Reply

log = logging.getLogger("rewind.history")

PAGE_LIMIT = 200  # messages per conversations.history / conversations.replies call
Handler = Callable[[Services, WebClient, Any, Any], Reply]


def _import_history(services: Services, client: WebClient, inv: Any, cmd: ImportHistory) -> Reply:
    # On the restore jobs' pool rather than a thread of its own, so piped shell input waits for it like for them.
    services.jobs.background.submit(import_channel_history, services, client, inv.channel_id)
    return Reply("Reading this channel's history. I'll post a progress message here and the result when done.")


def import_channel_history(services: Services, client: WebClient, channel_id: str) -> None:
    """Read the channel, import it, report. Runs in its own thread; every failure ends in a message, not a trace."""
    try:
        progress = client.chat_postMessage(
            channel=channel_id, text=":hourglass_flowing_sand: Importing history: reading…", metadata=receipt_metadata()
        )
    except SlackApiError as exc:  # not in the channel, say: then it cannot read the history either
        log.warning("history import of %s not started: %s", channel_id, exc.response.get("error"))
        return
    progress_ts = str(progress["ts"])

    def show(text: str) -> None:
        try:
            client.chat_update(channel=channel_id, ts=progress_ts, text=text)
        except SlackApiError as exc:
            log.info("progress update skipped: %s", exc.response.get("error"))

    try:
        me = client.auth_test()
        channel = ChannelInfo.model_validate(client.conversations_info(channel=channel_id)["channel"])
        messages: list[SlackMessage] = []
        for page, batch in enumerate(read_history(client, channel_id), start=1):
            messages += batch
            show(f":hourglass_flowing_sand: Importing history: {len(messages)} messages read ({page} pages)…")
        result = HistoryImporter(services.store, services.settings).import_history(
            channel, messages, services.names.name, bot=BotIdentity.of(me.get("user_id"), me.get("bot_id"))
        )
    except SlackApiError as exc:
        show(f":warning: History import stopped: Slack answered `{exc.response.get('error')}`. Nothing more was read.")
        return
    except RewindError as exc:
        show(f":warning: History import stopped: {exc}")
        return
    except Exception:
        log.exception("history import of %s failed", channel_id)
        show(":warning: History import failed unexpectedly; the bot's log has the details. Running it again is safe.")
        return
    show(f":white_check_mark: History read: {result.messages} messages.")
    client.chat_postMessage(
        channel=channel_id, text=f":rewind: History imported: {result.summary()}", metadata=receipt_metadata()
    )


def read_history(client: WebClient, channel_id: str) -> Iterator[list[SlackMessage]]:
    """Pages of the channel's messages, each top-level page followed by the replies of the threads it opened."""
    cursor: str | None = None
    while True:
        response = client.conversations_history(
            channel=channel_id, limit=PAGE_LIMIT, cursor=cursor, include_all_metadata=True
        )
        batch = [SlackMessage.model_validate(m) for m in response.get("messages", [])]
        for parent in response.get("messages", []):
            if parent.get("reply_count") and parent.get("thread_ts") == parent.get("ts"):
                batch += _thread(client, channel_id, parent["ts"])
        yield batch
        cursor = (response.get("response_metadata") or {}).get("next_cursor")
        if not cursor:
            return


def _thread(client: WebClient, channel_id: str, thread_ts: str) -> list[SlackMessage]:
    replies: list[SlackMessage] = []
    cursor: str | None = None
    while True:
        response = client.conversations_replies(
            channel=channel_id, ts=thread_ts, limit=PAGE_LIMIT, cursor=cursor, include_all_metadata=True
        )
        replies += [SlackMessage.model_validate(m) for m in response.get("messages", []) if m.get("ts") != thread_ts]
        cursor = (response.get("response_metadata") or {}).get("next_cursor")
        if not cursor:
            return replies


HANDLERS: dict[type, Handler] = {ImportHistory: _import_history}
