"""Drive a real Bolt app the way Slack does: signed HTTP requests, or envelopes over the Socket Mode link.

Payload builders return realistic shapes (slash command forms, Events API callbacks, message shortcuts, block actions),
so listeners see what production sees. Defaults describe one workspace: team `T0LOCAL`, the bot `U0REWIND`.
"""

import hashlib
import hmac
import http.client
import json
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

from slack_bolt import App
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_sdk import WebClient

from bot.localslack import APP_ID, BOT_USER_ID, TEAM_ID, LocalSlack

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
    command: str = "/inc",
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


# ---------------------------------------------------------------- HTTP driver


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    text: str

    def json(self) -> Any:
        return json.loads(self.text) if self.text else None


@dataclass
class SlackDriver:
    """Sends signed requests to a Bolt app over HTTP. `base_url` is the server root, e.g. `http://127.0.0.1:3000`.

    With `keep_alive`, each thread reuses one connection (as Slack's senders do); otherwise one per request.
    """

    base_url: str
    signing_secret: str
    path: str = "/slack/events"
    keep_alive: bool = False
    timeout: float = 10
    _local: threading.local = field(default_factory=threading.local, repr=False)

    def command(
        self,
        text: str,
        user: str = DEFAULT_USER,
        channel: str = DEFAULT_CHANNEL,
        channel_name: str = DEFAULT_CHANNEL_NAME,
        command: str = "/inc",
    ) -> Response:
        return self.send_form(slash_command(text, user, channel, channel_name, command))

    def event(
        self,
        event: Mapping[str, Any],
        event_id: str | None = None,
        retry_num: int | None = None,
        retry_reason: str | None = None,
    ) -> Response:
        """Deliver an Events API callback; `retry_num`/`retry_reason` add Slack's redelivery headers."""
        body = json.dumps(event_callback(event, event_id))
        extra: dict[str, str] = {}
        if retry_num is not None:
            extra["X-Slack-Retry-Num"] = str(retry_num)
            extra["X-Slack-Retry-Reason"] = retry_reason or "http_timeout"
        return self.post(body, {**sign(self.signing_secret, body, content_type=JSON), **extra})

    def shortcut(
        self,
        callback_id: str,
        message: Mapping[str, Any],
        channel: str = DEFAULT_CHANNEL,
        user: str = DEFAULT_USER,
    ) -> Response:
        return self.interactive(message_shortcut(callback_id, message, channel, user))

    def action(
        self,
        action_id: str,
        value: str | None = None,
        user: str = DEFAULT_USER,
        channel: str | None = DEFAULT_CHANNEL,
        message: Mapping[str, Any] | None = None,
    ) -> Response:
        return self.interactive(block_actions(action_id, value, user, channel, message))

    def interactive(self, payload: Mapping[str, Any]) -> Response:
        return self.send_form_body(form_payload(payload))

    def send_form(self, fields: Mapping[str, str]) -> Response:
        return self.send_form_body(urlencode(fields))

    def send_form_body(self, body: str) -> Response:
        return self.post(body, sign(self.signing_secret, body))

    def post(self, body: str, headers: Mapping[str, str]) -> Response:
        """Raw POST with exactly these headers: for forged, stale or missing-header tests."""
        data = body.encode()
        all_headers = {**headers, "Content-Length": str(len(data))}
        if not self.keep_alive:
            conn = self._connect()
            try:
                return self._roundtrip(conn, data, all_headers)
            finally:
                conn.close()
        try:
            return self._roundtrip(self._connection(), data, all_headers)
        except (http.client.HTTPException, ConnectionError):
            self._local.conn = None  # the server closed an idle keep-alive connection; retry once on a fresh one
            return self._roundtrip(self._connection(), data, all_headers)

    def _roundtrip(self, conn: http.client.HTTPConnection, data: bytes, headers: Mapping[str, str]) -> Response:
        conn.request("POST", self.path, body=data, headers=dict(headers))
        resp = conn.getresponse()
        text = resp.read().decode("utf-8", errors="replace")
        return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, text)

    def get(self, path: str) -> Response:
        conn = self._connect()
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read().decode())
        finally:
            conn.close()

    def _connect(self) -> http.client.HTTPConnection:
        parts = urlsplit(self.base_url)
        return http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=self.timeout)

    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
        return conn


# ---------------------------------------------------------------- Socket Mode driver


class SocketModeDriver:
    """Runs Bolt's `SocketModeHandler` against the stand-in and sends envelopes as Slack would.

    Each send returns the client's ack (`{"envelope_id": ..., "payload": {...}}`, payload only when the app
    acknowledged with content).
    """

    def __init__(self, slack: LocalSlack, app: App, app_token: str = "xapp-1-A0REWIND-1-local") -> None:
        self.slack = slack
        self.app = app
        self.handler = SocketModeHandler(
            app,
            app_token=app_token,
            web_client=WebClient(base_url=slack.url),
            auto_reconnect_enabled=False,
        )

    def connect(self, timeout: float = 5) -> "SocketModeDriver":
        self.handler.connect()  # returns once the WebSocket handshake is done
        self.slack.wait_for_connection(timeout)
        return self

    def close(self) -> None:
        client = self.handler.client
        client.auto_reconnect_enabled = False
        # Closing from the server side wakes the client's blocking recv (3 s timeout) so teardown is quick.
        self.slack.close_socket_connections()
        client.closed = True
        client.message_queue.put(None)  # and wakes the message processor's 1 s queue wait
        self.handler.close()

    def __enter__(self) -> "SocketModeDriver":
        return self.connect()

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def send(self, payload_type: str, payload: Mapping[str, Any], timeout: float = 5, **kw: Any) -> dict[str, Any]:
        envelope_id = self.slack.send_envelope(payload_type, dict(payload), timeout=timeout, **kw)  # type: ignore[arg-type]
        return self.slack.wait_for_ack(envelope_id, timeout)

    def command(
        self,
        text: str,
        user: str = DEFAULT_USER,
        channel: str = DEFAULT_CHANNEL,
        channel_name: str = DEFAULT_CHANNEL_NAME,
        command: str = "/inc",
    ) -> dict[str, Any]:
        return self.send("slash_commands", slash_command(text, user, channel, channel_name, command))

    def event(self, event: Mapping[str, Any], event_id: str | None = None, retry_attempt: int = 0) -> dict[str, Any]:
        reason = "timeout" if retry_attempt else ""
        return self.send(
            "events_api", event_callback(event, event_id), retry_attempt=retry_attempt, retry_reason=reason
        )

    def shortcut(
        self, callback_id: str, message: Mapping[str, Any], channel: str = DEFAULT_CHANNEL, user: str = DEFAULT_USER
    ) -> dict[str, Any]:
        return self.send("interactive", message_shortcut(callback_id, message, channel, user))

    def action(
        self,
        action_id: str,
        value: str | None = None,
        user: str = DEFAULT_USER,
        channel: str | None = DEFAULT_CHANNEL,
        message: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        return self.send("interactive", block_actions(action_id, value, user, channel, message))


__all__ = [
    "Response",
    "SlackDriver",
    "SocketModeDriver",
    "app_mention",
    "block_actions",
    "event_callback",
    "form_payload",
    "message_changed",
    "message_event",
    "message_shortcut",
    "reaction_added",
    "reaction_removed",
    "sign",
    "slash_command",
]
