"""📌 and 🟡 on a message put it on the timeline; removing the reaction withdraws it."""

import contextlib
import logging
from typing import Any

from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.errors import RewindError
from bot.grammar.times import slack_ts_to_datetime, split_leading_time
from bot.scribe.timeline import DuplicateEvent, MessageRef
from bot.services import Services
from bot.store.models import EntryKind, EntrySource
from handlers.slackio import confirm_recorded, fetch_message, permalink

log = logging.getLogger("rewind.reactions")


def reaction_kinds(services: Services) -> dict[str, EntryKind]:
    settings = services.settings
    return {settings.emoji_note: EntryKind.NOTE, settings.emoji_flag: EntryKind.FLAG}


def message_ref(services: Services, client: WebClient, channel_id: str, message: dict[str, Any]) -> MessageRef:
    """The message as a timeline entry: a leading `10:42`/`~10:42`/`at 10:42` dates it on its own day."""
    zone = services.settings.zone
    posted = slack_ts_to_datetime(message["ts"])
    when, text = split_leading_time(
        message.get("text", ""), now=posted, zone=zone, day=posted.astimezone(zone).date(), strict=False
    )
    author = message.get("user") or message.get("bot_id") or "unknown"
    return MessageRef(
        channel_id=channel_id,
        ts=message["ts"],
        author_id=author,
        text=text or message.get("text", ""),
        occurred_at=when.at if when else posted,
        approximate=bool(when and when.approximate),
        permalink=permalink(client, channel_id, message["ts"]),
        author_name=services.names.name(author),
    )


def register(app: App, services: Services) -> None:
    kinds = reaction_kinds(services)

    def timeline_emoji(event: dict[str, Any]) -> bool:
        """Only 📌 and 🟡 are ours; other reactions (✅ on a proposal, say) go to their own listeners."""
        return event.get("reaction") in kinds

    @app.event("reaction_added", matchers=[timeline_emoji])
    def on_added(event: dict[str, Any], body: dict[str, Any], client: WebClient) -> None:
        kind, item = kinds[event["reaction"]], event.get("item", {})
        if item.get("type") != "message" or services.incidents.find(item["channel"]) is None:
            return
        message = fetch_message(client, item["channel"], item["ts"])
        if message is None:
            log.warning("reaction on a message I cannot read in %s", item["channel"])
            return
        ref = message_ref(services, client, item["channel"], message)
        try:
            recorded = services.timeline.record_message(
                ref, kind, event["user"], source=EntrySource.REACTION, event_id=body.get("event_id")
            )
        except (DuplicateEvent, RewindError):
            return
        if recorded.created:
            confirm_recorded(services, client, ref, recorded)

    @app.event("reaction_removed", matchers=[timeline_emoji])
    def on_removed(event: dict[str, Any], body: dict[str, Any], client: WebClient) -> None:
        kind, item = kinds[event["reaction"]], event.get("item", {})
        if item.get("type") != "message" or services.incidents.find(item["channel"]) is None:
            return
        try:
            withdrawn = services.timeline.withdraw_reaction(
                item["channel"], item["ts"], kind, event["user"], event_id=body.get("event_id")
            )
        except DuplicateEvent:
            return
        if withdrawn is not None and kind == EntryKind.NOTE:
            # The confirmation may already be gone; the entry is withdrawn either way.
            with contextlib.suppress(SlackApiError):
                client.reactions_remove(
                    channel=item["channel"], timestamp=item["ts"], name=services.settings.emoji_confirm
                )


def register_unmatched(app: App) -> None:
    """Reactions nobody listens for are acknowledged quietly instead of logged as unhandled."""

    @app.event("reaction_added")
    def on_other_added() -> None:
        pass

    @app.event("reaction_removed")
    def on_other_removed() -> None:
        pass
