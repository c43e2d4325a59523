"""Message events: an edited message updates its timeline entries; mentions get a pointer to the commands."""

from typing import Any

from slack_bolt import App, Say

from bot.grammar.times import slack_ts_to_datetime, split_leading_time
from bot.services import Services


def register(app: App, services: Services) -> None:
    @app.event({"type": "message", "subtype": "message_changed"})
    def on_edit(event: dict[str, Any], body: dict[str, Any]) -> None:
        message = event.get("message") or {}
        if not message.get("ts") or message.get("bot_id"):
            return
        day = slack_ts_to_datetime(message["ts"]).astimezone(services.settings.zone).date()
        _, text = split_leading_time(
            message.get("text", ""),
            now=slack_ts_to_datetime(message["ts"]),
            zone=services.settings.zone,
            day=day,
            strict=False,
        )
        services.timeline.edit_message(event["channel"], message["ts"], text, event_id=body.get("event_id"))

    @app.event("message")
    def on_message() -> None:
        """Plain messages are not recorded until someone pins them; registered so Bolt doesn't warn."""

    @app.event("app_mention")
    def on_mention(event: dict[str, Any], say: Say) -> None:
        slash = services.settings.slash_command
        say(
            text=f"I record what you pin with :pushpin: and what you type after `{slash}`. Try `{slash} help`.",
            thread_ts=event.get("thread_ts") or event.get("ts"),
        )
