"""A local stand-in for the Slack Web API and the Socket Mode link, for tests, shell mode and benchmarks.

`LocalSlack().start()` serves on 127.0.0.1 (a free port). Point `WebClient(base_url=stand_in.url)` at it. It keeps a
little workspace state (channels, messages, threads, reactions, users, files, canvases, views) so the bot sees Slack's
answers and errors, records every call, and answers with injected faults (errors, rate limits) when told to. Socket
Mode: `apps.connections.open` hands out a `ws://` URL on the same server, for slack_sdk's builtin `SocketModeClient`.
"""

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from bot.localslack.http import Server
from bot.localslack.socketmode import PayloadType, SocketHub
from bot.localslack.webapi import WebApi
from bot.localslack.workspace import WORKSPACE, Params, SlackError, Upload, Workspace

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecordedCall:
    """One Web API call as the stand-in received it. `token` comes from the Authorization header or `token` param."""

    method: str
    params: Params
    token: str | None
    at: float
    response: dict[str, Any] = field(default_factory=dict)
    status: int = 200

    @property
    def ok(self) -> bool:
        return bool(self.response.get("ok"))


@dataclass
class _Fault:
    error: str | None = None
    retry_after: int | None = None
    remaining: int = 1


CallListener = Callable[[RecordedCall], None]


class LocalSlack:
    """The stand-in. Thread-safe; use as a context manager or call `start()` / `stop()`."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, workspace: str = WORKSPACE) -> None:
        self._address = (host, port)
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self._ws = Workspace(lambda: self.base_url, workspace)
        self._api = WebApi(self._ws)
        self.hub = SocketHub()
        self._calls: list[RecordedCall] = []
        self._calls_cond = threading.Condition()
        self._faults: dict[str, deque[_Fault]] = {}
        self._listeners: list[CallListener] = []

    # ---- lifecycle

    def start(self) -> "LocalSlack":
        self._server = Server(self._address, self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="localslack", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.hub.close_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> "LocalSlack":
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:<port>` with no trailing slash."""
        if self._server is None:
            raise RuntimeError("LocalSlack is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def url(self) -> str:
        """The Web API base URL for `WebClient(base_url=...)`; ends in `/api/`."""
        return f"{self.base_url}/api/"

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1])

    # ---- request handling (called from server threads)

    def answer(
        self, method: str, params: Params, token: str | None, at: float
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        """Answer one Web API call (an injected fault first, else the method) and record it before the reply goes."""
        status, response, headers = self._handle(method, params, token)
        self._record(RecordedCall(method, params, token, at, response, status))
        return status, response, headers

    def _handle(self, method: str, params: Params, token: str | None) -> tuple[int, dict[str, Any], dict[str, str]]:
        fault = self._take_fault(method)
        if fault is not None and fault.retry_after is not None:
            return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(fault.retry_after)}
        if fault is not None:
            return 200, {"ok": False, "error": fault.error}, {}
        status, response = self._api.call(method, params, token)
        return status, response, {}

    def _record(self, call: RecordedCall) -> None:
        with self._calls_cond:
            self._calls.append(call)
            self._calls_cond.notify_all()
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(call)
            except Exception:
                log.exception("local Slack: an on_call listener failed")

    def store_upload(self, file_id: str, data: bytes) -> bool:
        with self._ws.lock:
            upload = self._ws.uploads.get(file_id)
            if upload is None:
                return False
            upload.data = data
            return True

    def _take_fault(self, method: str) -> _Fault | None:
        with self._calls_cond:
            queue = self._faults.get(method)
            if not queue:
                return None
            fault = queue[0]
            fault.remaining -= 1
            if fault.remaining <= 0:
                queue.popleft()
            return fault

    # ---- recorded calls

    def calls(self, method: str | None = None) -> list[RecordedCall]:
        with self._calls_cond:
            return [c for c in self._calls if method is None or c.method == method]

    def clear(self) -> None:
        """Forget recorded calls (state such as channels and messages stays)."""
        with self._calls_cond:
            self._calls.clear()

    def wait_for(self, method: str, count: int = 1, timeout: float = 5) -> list[RecordedCall]:
        """Block until `count` calls of `method` are recorded (bots post from background threads)."""
        with self._calls_cond:
            done = self._calls_cond.wait_for(lambda: len(self.calls(method)) >= count, timeout)
            if not done:
                seen = sorted({c.method for c in self._calls})
                raise TimeoutError(f"{method} called {len(self.calls(method))}/{count} times in {timeout}s; saw {seen}")
            return self.calls(method)

    def on_call(self, callback: CallListener) -> Callable[[], None]:
        """Call `callback(call)` after each recorded call, from the server thread. Returns an unsubscribe function."""
        with self._calls_cond:
            self._listeners.append(callback)

        def unsubscribe() -> None:
            with self._calls_cond:
                if callback in self._listeners:
                    self._listeners.remove(callback)

        return unsubscribe

    # ---- fault injection

    def fail_next(self, method: str, error: str, times: int = 1) -> None:
        """Answer the next `times` calls of `method` with `{"ok": false, "error": error}`."""
        with self._calls_cond:
            self._faults.setdefault(method, deque()).append(_Fault(error=error, remaining=times))

    def rate_limit_next(self, method: str, retry_after: int = 0, times: int = 1) -> None:
        """Answer the next `times` calls of `method` with HTTP 429 and `Retry-After: retry_after`."""
        with self._calls_cond:
            self._faults.setdefault(method, deque()).append(_Fault(retry_after=retry_after, remaining=times))

    # ---- workspace state

    def add_user(
        self,
        user_id: str,
        name: str,
        real_name: str | None = None,
        display_name: str | None = None,
        tz: str = "UTC",
        is_bot: bool = False,
    ) -> None:
        with self._ws.lock:
            self._ws.add_user(user_id, name, real_name, display_name, tz, is_bot)

    def add_channel(
        self, name: str, channel_id: str | None = None, members: Iterable[str] = (), is_private: bool = False
    ) -> str:
        """Create a channel as if a person had; the bot is not a member unless listed. Returns its id."""
        with self._ws.lock:
            try:
                return self._ws.add_channel(name, channel_id, members, is_private)
            except SlackError as exc:
                raise ValueError(f"cannot add channel {name!r}: {exc.error}") from exc

    def post_as_user(
        self, channel: str, user: str, text: str, ts: str | None = None, thread_ts: str | None = None
    ) -> str:
        """Put a message in a channel as a person would post it (state only, no event is sent). Returns its ts."""
        with self._ws.lock:
            channel_id = self._ws.channel(channel)["id"]
            if ts is not None:
                if any(m["ts"] == ts for m in self._ws.messages[channel_id]):
                    raise ValueError(f"a message with ts {ts} already exists in {channel_id}")
                self._ws.claim_ts(ts)
            message: dict[str, Any] = {"type": "message", "user": user, "text": text, "ts": ts or self._ws.next_ts()}
            if thread_ts:
                message["thread_ts"] = thread_ts
            return self._ws.store_message(channel_id, message)["ts"]

    def react_as_user(self, channel: str, ts: str, user: str, name: str) -> None:
        """Add a person's reaction to a message (state only, no event is sent)."""
        with self._ws.lock:
            self._ws.add_reaction(channel, ts, user, name)

    def add_usergroup(self, group_id: str, members: Iterable[str]) -> None:
        """A user group (`S…`) and its members, as usergroups.users.list will answer."""
        with self._ws.lock:
            self._ws.usergroups[group_id] = list(members)

    def user_name(self, user_id: str) -> str:
        """What Slack shows for a user: the real name, else the handle, else the id."""
        with self._ws.lock:
            user = self._ws.users.get(user_id) or {}
        return str(user.get("real_name") or user.get("name") or user_id)

    def unreact_as_user(self, channel: str, ts: str, user: str, name: str) -> None:
        """Take a person's reaction back (state only, no event is sent)."""
        with self._ws.lock:
            self._ws.remove_reaction(channel, ts, user, name)

    def channel(self, channel: str) -> dict[str, Any]:
        """A channel by id or name, with `is_member` and `num_members`."""
        with self._ws.lock:
            return self._ws.channel_view(self._ws.channel(channel)["id"])

    def channel_members(self, channel: str) -> set[str]:
        with self._ws.lock:
            return set(self._ws.members[self._ws.channel(channel)["id"]])

    def messages(self, channel: str) -> list[dict[str, Any]]:
        """Every message in a channel, thread replies included, oldest first (copies)."""
        with self._ws.lock:
            return [dict(m) for m in self._ws.messages[self._ws.channel(channel)["id"]]]

    def message(self, channel: str, ts: str) -> dict[str, Any]:
        with self._ws.lock:
            return dict(self._ws.find_message(self._ws.channel(channel)["id"], ts))

    def ephemeral_messages(self) -> list[dict[str, Any]]:
        with self._ws.lock:
            return [dict(m) for m in self._ws.ephemeral]

    def uploads(self) -> list[Upload]:
        """Completed uploads, in order."""
        with self._ws.lock:
            return [u for u in self._ws.uploads.values() if u.completed]

    def canvases(self) -> list[dict[str, Any]]:
        with self._ws.lock:
            return [dict(c) for c in self._ws.canvases.values()]

    def views(self) -> list[dict[str, Any]]:
        with self._ws.lock:
            return [dict(v) for v in self._ws.views.values()]

    # ---- Socket Mode

    @property
    def socket_mode_url(self) -> str:
        return self._api.ws_url()

    def wait_for_connection(self, timeout: float = 5) -> None:
        self.hub.wait_for_link(timeout)

    def send_envelope(
        self,
        payload_type: PayloadType,
        payload: dict[str, Any],
        *,
        retry_attempt: int = 0,
        retry_reason: str = "",
        timeout: float = 5,
    ) -> str:
        """Send an envelope to the newest connected Socket Mode client, as Slack does. Returns its envelope_id."""
        return self.hub.send_envelope(
            payload_type, payload, retry_attempt=retry_attempt, retry_reason=retry_reason, timeout=timeout
        )

    def wait_for_ack(self, envelope_id: str, timeout: float = 5) -> dict[str, Any]:
        """The client's ack: `{"envelope_id": ..., "payload": {...}}` (payload only when the app responded with one)."""
        return self.hub.wait_for_ack(envelope_id, timeout)

    def send_disconnect(self, reason: str = "refresh_requested") -> None:
        """Ask the connected client to reconnect, as Slack does every few hours."""
        self.hub.send_disconnect(reason)

    def close_socket_connections(self) -> None:
        """Close every Socket Mode connection from the server side (a client blocked in recv notices at once)."""
        self.hub.close_all()
