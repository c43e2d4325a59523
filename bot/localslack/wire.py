"""Slack's wire format: signed bodies for slash commands, Events API callbacks and interactivity payloads.

Shell mode talks to the Bolt app with these exactly as Slack would (signed, verified by Bolt); the tests and the
benchmarks drive the app over HTTP or Socket Mode with the same builders. Defaults describe one workspace:
team `T0LOCAL`, the bot `U0REWIND`.
"""

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from bot.localslack.workspace import APP_ID, BOT_USER_ID, TEAM_ID
from bot.manifest import SLASH_COMMAND

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
DEFAULT_USER = "U0ALICE"
DEFAULT_CHANNEL = "C0INCIDENT"
DEFAULT_CHANNEL_NAME = "inc-db-outage"
WORKSPACE_DOMAIN = "rewind-local"


# ---------------------------------------------------------------- signing


def sign(secret: str, body: str, timestamp: int | str | None = None, content_type: str = FORM) -> dict[str, str]:
    """Headers Slack sends: `X-Slack-Signature: v0=HMAC-SHA256(secret, "v0:{ts}:{body}")` and the timestamp."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": f"v0={digest}",
    }


# ---------------------------------------------------------------- payload builders


def new_ts() -> str:
    """A message ts in Slack's format for now; random microseconds keep it unique enough for payload defaults."""
    return f"{int(time.time())}.{uuid.uuid4().int % 1_000_000:06d}"


def new_trigger_id() -> str:
    return f"{uuid.uuid4().int % 10**13}.{int(time.time())}.{uuid.uuid4().hex}"


def new_event_id() -> str:
    return "Ev" + uuid.uuid4().hex[:10].upper()


def response_url(kind: str = "commands") -> str:
    return f"https://hooks.slack.com/{kind}/{TEAM_ID}/{uuid.uuid4().int % 10**13}/{uuid.uuid4().hex[:24]}"


def slash_command(
    text: str,
    user: str = DEFAULT_USER,
    channel: str = DEFAULT_CHANNEL,
    channel_name: str = DEFAULT_CHANNEL_NAME,
    command: str = SLASH_COMMAND,
    user_name: str | None = None,
) -> dict[str, str]:
    """The fields of a slash command (form-encoded over HTTP, a JSON object over Socket Mode)."""
    return {
        "token": "deprecated-verification-token",
        "team_id": TEAM_ID,
        "team_domain": WORKSPACE_DOMAIN,
        "channel_id": channel,
        "channel_name": channel_name,
        "user_id": user,
        "user_name": user_name or user.lower(),
        "command": command,
        "text": text,
        "api_app_id": APP_ID,
        "is_enterprise_install": "false",
        "response_url": response_url(),
        "trigger_id": new_trigger_id(),
    }


def event_callback(event: Mapping[str, Any], event_id: str | None = None, event_time: int | None = None) -> dict:
    """Wrap an event in the Events API envelope, with the bot's authorization as Slack adds it."""
    return {
        "token": "deprecated-verification-token",
        "team_id": TEAM_ID,
        "context_team_id": TEAM_ID,
        "context_enterprise_id": None,
        "api_app_id": APP_ID,
        "event": dict(event),
        "type": "event_callback",
        "event_id": event_id or new_event_id(),
        "event_time": event_time if event_time is not None else int(time.time()),
        "authorizations": [
            {
                "enterprise_id": None,
                "team_id": TEAM_ID,
                "user_id": BOT_USER_ID,
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "is_ext_shared_channel": False,
        "event_context": f"4-{uuid.uuid4().hex}",
    }


def _reaction(kind: str, reaction: str, channel: str, ts: str, user: str, item_user: str | None) -> dict[str, Any]:
    return {
        "type": kind,
        "user": user,
        "reaction": reaction,
        "item": {"type": "message", "channel": channel, "ts": ts},
        "item_user": item_user or user,
        "event_ts": new_ts(),
    }


def reaction_added(
    reaction: str, channel: str, ts: str, user: str = DEFAULT_USER, item_user: str | None = None
) -> dict[str, Any]:
    return _reaction("reaction_added", reaction, channel, ts, user, item_user)


def reaction_removed(
    reaction: str, channel: str, ts: str, user: str = DEFAULT_USER, item_user: str | None = None
) -> dict[str, Any]:
    return _reaction("reaction_removed", reaction, channel, ts, user, item_user)


def message_event(
    text: str,
    channel: str = DEFAULT_CHANNEL,
    user: str = DEFAULT_USER,
    ts: str | None = None,
    thread_ts: str | None = None,
) -> dict[str, Any]:
    ts = ts or new_ts()
    event: dict[str, Any] = {
        "type": "message",
        "channel": channel,
        "user": user,
        "text": text,
        "ts": ts,
        "event_ts": ts,
        "channel_type": "channel",
        "team": TEAM_ID,
        "client_msg_id": str(uuid.uuid4()),
    }
    if thread_ts:
        event["thread_ts"] = thread_ts
    return event


def message_changed(
    channel: str, ts: str, text: str, previous_text: str, user: str = DEFAULT_USER, event_ts: str | None = None
) -> dict[str, Any]:
    """An edit: Slack sends `subtype: message_changed` with the new and previous message, no top-level user."""
    event_ts = event_ts or new_ts()
    edited = {"user": user, "ts": event_ts}
    return {
        "type": "message",
        "subtype": "message_changed",
        "channel": channel,
        "hidden": True,
        "ts": event_ts,
        "event_ts": event_ts,
        "channel_type": "channel",
        "message": {"type": "message", "user": user, "text": text, "ts": ts, "edited": edited, "team": TEAM_ID},
        "previous_message": {"type": "message", "user": user, "text": previous_text, "ts": ts, "team": TEAM_ID},
    }


def app_mention(text: str, channel: str = DEFAULT_CHANNEL, user: str = DEFAULT_USER, ts: str | None = None) -> dict:
    ts = ts or new_ts()
    return {
        "type": "app_mention",
        "user": user,
        "text": text,
        "ts": ts,
        "event_ts": ts,
        "channel": channel,
        "team": TEAM_ID,
        "client_msg_id": str(uuid.uuid4()),
    }


def _user(user: str) -> dict[str, str]:
    return {"id": user, "username": user.lower(), "name": user.lower(), "team_id": TEAM_ID}


def _team() -> dict[str, str]:
    return {"id": TEAM_ID, "domain": WORKSPACE_DOMAIN}


def message_shortcut(
    callback_id: str,
    message: Mapping[str, Any],
    channel: str = DEFAULT_CHANNEL,
    user: str = DEFAULT_USER,
    channel_name: str = DEFAULT_CHANNEL_NAME,
) -> dict[str, Any]:
    """`type: message_action`: a shortcut from a message's menu, carrying that message."""
    return {
        "type": "message_action",
        "token": "deprecated-verification-token",
        "action_ts": new_ts(),
        "team": _team(),
        "user": _user(user),
        "channel": {"id": channel, "name": channel_name},
        "is_enterprise_install": False,
        "enterprise": None,
        "callback_id": callback_id,
        "trigger_id": new_trigger_id(),
        "response_url": response_url("app"),
        "message_ts": message["ts"],
        "message": dict(message),
    }


def block_actions(
    action_id: str,
    value: str | None = None,
    user: str = DEFAULT_USER,
    channel: str | None = DEFAULT_CHANNEL,
    message: Mapping[str, Any] | None = None,
    block_id: str = "actions",
    view: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A button click (`type: button`) in a message, or in a view when `view` is given."""
    action: dict[str, Any] = {
        "action_id": action_id,
        "block_id": block_id,
        "type": "button",
        "text": {"type": "plain_text", "text": action_id},
        "action_ts": new_ts(),
    }
    if value is not None:
        action["value"] = value
    payload: dict[str, Any] = {
        "type": "block_actions",
        "token": "deprecated-verification-token",
        "user": _user(user),
        "api_app_id": APP_ID,
        "team": _team(),
        "trigger_id": new_trigger_id(),
        "actions": [action],
        "is_enterprise_install": False,
        "enterprise": None,
    }
    if view is not None:
        payload["container"] = {"type": "view", "view_id": view.get("id", "V0")}
        payload["view"] = dict(view)
    else:
        msg = dict(message or {"type": "message", "ts": new_ts(), "text": ""})
        payload["container"] = {"type": "message", "message_ts": msg["ts"], "channel_id": channel}
        payload["channel"] = {"id": channel, "name": DEFAULT_CHANNEL_NAME}
        payload["message"] = msg
        payload["response_url"] = response_url("actions")
    return payload


def form_payload(payload: Mapping[str, Any]) -> str:
    """Interactivity bodies are `payload=<json>`, form-encoded."""
    return urlencode({"payload": json.dumps(payload)})
