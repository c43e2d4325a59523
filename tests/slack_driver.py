"""Drive a real Bolt app the way Slack does: signed HTTP requests, or envelopes over the Socket Mode link.

Payload builders return realistic shapes (slash command forms, Events API callbacks, message shortcuts, block actions),
so listeners see what production sees. Defaults describe one workspace: team `T0LOCAL`, the bot `U0REWIND`.
"""

import http.client
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

from slack_bolt import App
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_sdk import WebClient

from bot.localslack.standin import LocalSlack
from bot.localslack.wire import (
    DEFAULT_CHANNEL,
    DEFAULT_CHANNEL_NAME,
    DEFAULT_USER,
    FORM,
    JSON,
    WORKSPACE_DOMAIN,
    app_mention,
    block_actions,
    event_callback,
    form_payload,
    message_changed,
    message_event,
    message_shortcut,
    new_event_id,
    new_trigger_id,
    new_ts,
    reaction_added,
    reaction_removed,
    response_url,
    sign,
    slash_command,
)
from bot.manifest import SLASH_COMMAND

__all__ = [
    "DEFAULT_CHANNEL",
    "DEFAULT_CHANNEL_NAME",
    "DEFAULT_USER",
    "FORM",
    "JSON",
    "WORKSPACE_DOMAIN",
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
    "new_event_id",
    "new_trigger_id",
    "new_ts",
    "reaction_added",
    "reaction_removed",
    "response_url",
    "sign",
    "slash_command",
]


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
        command: str = SLASH_COMMAND,
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
        command: str = SLASH_COMMAND,
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
