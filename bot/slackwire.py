"""Slack's wire format: signed request bodies for slash commands, events and interactivity.

Shell mode uses it to talk to the Bolt app exactly as Slack would (signed, verified by Bolt), and the tests
and benchmarks use it to drive the app over HTTP.
"""

import json
import time
import uuid
from typing import Any
from urllib.parse import urlencode

from slack_sdk.signature import SignatureVerifier

from bot.localslack import APP_ID, TEAM_ID

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"


def signed_headers(secret: str, body: str, content_type: str, timestamp: int | None = None) -> dict[str, str]:
    """The headers Slack sends: `v0=` HMAC-SHA256 of `v0:{timestamp}:{body}` with the signing secret."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(secret).generate_signature(timestamp=stamp, body=body)
    return {"Content-Type": content_type, "X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": signature or ""}


def slash_command_body(
    command: str, text: str, *, user_id: str, user_name: str, channel_id: str, channel_name: str
) -> str:
    return urlencode(
        {
            "token": "deprecated-verification-token",
            "team_id": TEAM_ID,
            "team_domain": "rewind-local",
            "channel_id": channel_id,
            "channel_name": channel_name,
            "user_id": user_id,
            "user_name": user_name,
            "command": command,
            "text": text,
            "api_app_id": APP_ID,
            "is_enterprise_install": "false",
            "response_url": "",
            "trigger_id": f"{int(time.time())}.{uuid.uuid4().int % 10**12}",
        }
    )


def event_body(event: dict[str, Any], *, event_id: str | None = None, bot_user_id: str = "U0REWIND") -> str:
    """An Events API `event_callback` envelope around `event`."""
    return json.dumps(
        {
            "token": "deprecated-verification-token",
            "team_id": TEAM_ID,
            "api_app_id": APP_ID,
            "event": event,
            "type": "event_callback",
            "event_id": event_id or f"Ev{uuid.uuid4().hex[:16].upper()}",
            "event_time": int(time.time()),
            "authorizations": [
                {"team_id": TEAM_ID, "user_id": bot_user_id, "is_bot": True, "is_enterprise_install": False}
            ],
            "is_ext_shared_channel": False,
        }
    )


def reaction_event(added: bool, *, user: str, reaction: str, channel: str, ts: str, item_user: str) -> dict[str, Any]:
    return {
        "type": "reaction_added" if added else "reaction_removed",
        "user": user,
        "reaction": reaction,
        "item_user": item_user,
        "item": {"type": "message", "channel": channel, "ts": ts},
        "event_ts": f"{time.time():.6f}",
    }


def message_event(*, user: str, text: str, channel: str, ts: str) -> dict[str, Any]:
    return {
        "type": "message",
        "user": user,
        "text": text,
        "channel": channel,
        "ts": ts,
        "event_ts": ts,
        "channel_type": "channel",
    }


def message_changed_event(*, user: str, channel: str, ts: str, old_text: str, new_text: str) -> dict[str, Any]:
    now = f"{time.time():.6f}"
    return {
        "type": "message",
        "subtype": "message_changed",
        "channel": channel,
        "hidden": True,
        "ts": now,
        "event_ts": now,
        "channel_type": "channel",
        "message": {"type": "message", "user": user, "text": new_text, "ts": ts, "edited": {"user": user, "ts": now}},
        "previous_message": {"type": "message", "user": user, "text": old_text, "ts": ts},
    }


def message_shortcut_body(
    callback_id: str, *, user_id: str, user_name: str, channel_id: str, channel_name: str, message: dict[str, Any]
) -> str:
    payload = {
        "type": "message_action",
        "token": "deprecated-verification-token",
        "action_ts": f"{time.time():.6f}",
        "team": {"id": TEAM_ID, "domain": "rewind-local"},
        "user": {"id": user_id, "name": user_name},
        "channel": {"id": channel_id, "name": channel_name},
        "callback_id": callback_id,
        "trigger_id": f"{int(time.time())}.{uuid.uuid4().int % 10**12}",
        "message_ts": message["ts"],
        "message": message,
        "response_url": "",
    }
    return urlencode({"payload": json.dumps(payload)})
