"""Small Web API helpers the listeners share: read a message, its permalink, a user's name, confirm."""

import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import App, BoltContext
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.importing.receipts import receipt_metadata
from bot.manifest import SLASH_COMMAND, with_slash_command_everywhere
from bot.scribe.timeline import MessageRef, Recorded
from bot.services import Services
from bot.store.models import EntryKind

log = logging.getLogger("rewind.slack")


class WorkspaceClient(WebClient):
    """The Web API client every listener posts through. Messages are worded with the default slash command; this
    client names the command as the workspace configured it, in every text, block and comment it sends."""

    def __init__(self, *args: Any, slash_command: str = SLASH_COMMAND, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.slash_command = slash_command

    def api_call(self, api_method: str, **kwargs: Any) -> Any:  # type: ignore[override]
        for part in ("data", "params", "json"):
            if kwargs.get(part):
                kwargs[part] = with_slash_command_everywhere(kwargs[part], self.slash_command)
        return super().api_call(api_method, **kwargs)


def speak_the_workspace_command(app: App, slash: str) -> None:
    """Bolt gives each request a plain copy of the app's client; swap in one that names the configured command."""
    if slash == SLASH_COMMAND:
        return

    @app.middleware
    def workspace_client(context: BoltContext, next: Callable[[], None]) -> None:
        plain = context.client
        context["client"] = WorkspaceClient(
            token=plain.token,
            base_url=plain.base_url,
            timeout=plain.timeout,
            ssl=plain.ssl,
            proxy=plain.proxy,
            headers=plain.headers,
            retry_handlers=plain.retry_handlers,
            slash_command=slash,
        )
        context.pop("say", None)  # built lazily from the client: rebuild it from the new one
        next()


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
