"""The "Add to timeline" message shortcut: what 📌 does, from the message's menu."""

from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot.manifest import ADD_TO_TIMELINE
from bot.services import Services
from bot.store.models import EntryKind, EntrySource
from handlers.reactions import message_ref
from handlers.slackio import confirm_recorded


def register(app: App, services: Services) -> None:
    @app.shortcut(ADD_TO_TIMELINE)
    def on_add_to_timeline(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        channel_id, user_id = body["channel"]["id"], body["user"]["id"]
        if services.incidents.find(channel_id) is None:
            ack()
            client.chat_postEphemeral(
                channel=channel_id,
                user=user_id,
                text=f"This channel isn't an incident channel. Declare one with "
                f"`{services.settings.slash_command} declare <title>` first.",
            )
            return
        ref = message_ref(services, client, channel_id, body["message"])
        recorded = services.timeline.record_message(ref, EntryKind.NOTE, user_id, source=EntrySource.SHORTCUT)
        ack()
        if recorded.created:
            confirm_recorded(services, client, ref, recorded)
