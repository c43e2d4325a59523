"""The stand-in's HTTP side: `/api/<method>` calls (form or JSON bodies, bearer or `token` auth), the upload URLs
files.getUploadURLExternal hands out, and the WebSocket upgrade for Socket Mode.

The handler parses requests the way Slack's edge does and leaves the answers to a `Backend` (the `LocalSlack` facade).
"""

import contextlib
import json
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from bot.localslack.socketmode import SOCKET_PATH, SocketHub, accept_key
from bot.localslack.workspace import Params

# Parameters that slack_sdk sends JSON-encoded inside form bodies; decoded so recorded params look the same either way.
_JSON_PARAMS = frozenset({"blocks", "attachments", "view", "files", "metadata", "document_content", "changes"})


class Backend(Protocol):
    """What the server serves from: answers (and records) Web API calls, keeps uploaded bytes, owns the Socket hub."""

    hub: SocketHub

    def answer(
        self, method: str, params: Params, token: str | None, at: float
    ) -> tuple[int, dict[str, Any], dict[str, str]]: ...

    def store_upload(self, file_id: str, data: bytes) -> bool: ...


def _decode_params(raw: dict[str, Any]) -> Params:
    params: Params = {}
    for key, value in raw.items():
        if key in _JSON_PARAMS and isinstance(value, str) and value[:1] in ("[", "{"):
            with contextlib.suppress(ValueError):
                value = json.loads(value)
        params[key] = value
    return params


def _parse_form(text: str) -> dict[str, Any]:
    return {k: v[-1] for k, v in parse_qs(text, keep_blank_values=True).items()}


def _bearer(header: str | None) -> str | None:
    if header and header.lower().startswith("bearer "):
        return header[7:].strip()
    return None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: "Server"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the request line is noise here; calls are recorded instead

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == SOCKET_PATH and self.headers.get("Upgrade", "").lower() == "websocket":
            self._upgrade()
        elif path.startswith("/api/"):
            self._api("GET")
        else:
            self._reply(404, {"ok": False, "error": "not_found"})

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        if path.startswith("/upload/"):
            self._upload(path.removeprefix("/upload/"))
        elif path.startswith("/api/"):
            self._api("POST")
        else:
            self._reply(404, {"ok": False, "error": "not_found"})

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _params(self) -> tuple[Params, str | None]:
        raw: dict[str, Any] = _parse_form(urlsplit(self.path).query)
        body = self._body()
        content_type = (self.headers.get("Content-Type") or "").lower()
        if body and content_type.startswith("application/json"):
            loaded = json.loads(body)
            raw.update(loaded if isinstance(loaded, dict) else {})
        elif body:
            raw.update(_parse_form(body.decode("utf-8")))
        token = _bearer(self.headers.get("Authorization")) or raw.pop("token", None)
        raw.pop("token", None)
        return _decode_params(raw), token

    def _api(self, verb: str) -> None:
        at = time.time()
        method = urlsplit(self.path).path.removeprefix("/api/")
        try:
            params, token = self._params()
        except (ValueError, UnicodeDecodeError):
            self._reply(200, {"ok": False, "error": "invalid_form_data"})
            return
        status, response, headers = self.server.backend.answer(method, params, token, at)
        self._reply(status, response, headers)

    def _upload(self, file_id: str) -> None:
        body = self._body()
        if not self.server.backend.store_upload(file_id, body):
            self._reply(404, {"ok": False, "error": "file_not_found"})
            return
        self._reply_text(200, f"OK - {len(body)}")

    def _upgrade(self) -> None:
        key = self.headers.get("Sec-WebSocket-Key", "").strip()
        if not key:
            self._reply(400, {"ok": False, "error": "missing_websocket_key"})
            return
        accept = accept_key(key)
        self.send_response(101, "Switching Protocols")
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.end_headers()
        self.wfile.flush()
        hub = self.server.backend.hub
        hub.serve(hub.attach(self.connection), self.rfile)
        self.close_connection = True

    def _reply(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _reply_text(self, status: int, text: str) -> None:
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class Server(ThreadingHTTPServer):
    """The stand-in's HTTP server: Web API calls, upload URLs and the Socket Mode upgrade, one thread per request."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], backend: Backend) -> None:
        super().__init__(address, _Handler)
        self.backend = backend
