"""HTTP mode: a small threaded server that hands Slack's requests to a Bolt app.

`POST /slack/events` carries slash commands, Events API callbacks and interactivity alike; Bolt verifies the
signature and routes. `GET /healthz` answers for load balancers. The ack-latency bench measures this stack, so the
handler does little: read the body, dispatch, write the response in one go with Nagle off.
"""

import json
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from slack_bolt import App
from slack_bolt.request import BoltRequest
from slack_bolt.response import BoltResponse

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
HEALTH_PATH = "/healthz"
MAX_BODY_BYTES = 1 << 20  # Slack payloads are far smaller; refuse anything silly before reading it

HealthCheck = Callable[[], bool]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so a busy sender does not pay a TCP handshake per request
    disable_nagle_algorithm = True
    server: "_Server"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def do_POST(self) -> None:
        path, _, query = self.path.partition("?")
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            self._send(413, {"content-type": ["application/json"]}, b'{"ok":false,"error":"too_large"}')
            return
        body = self.rfile.read(length) if length else b""
        if path != EVENTS_PATH:
            self._send(404, {}, b"")
            return
        self._dispatch(body, query)

    def do_GET(self) -> None:
        if self.path.partition("?")[0] != HEALTH_PATH:
            self._send(404, {}, b"")
            return
        healthy = self.server.healthy()
        payload = json.dumps({"ok": healthy}).encode()
        self._send(200 if healthy else 503, {"content-type": ["application/json"]}, payload)

    def _dispatch(self, body: bytes, query: str) -> None:
        headers: dict[str, Sequence[str]] = {k.lower(): self.headers.get_all(k) or [] for k in self.headers}
        try:
            request = BoltRequest(body=body.decode("utf-8"), query=query, headers=headers)
            response: BoltResponse = self.server.app.dispatch(request)
        except Exception:
            log.exception("dispatching a Slack request failed")
            self._send(500, {}, b"")
            return
        self._send(response.status, response.headers, (response.body or "").encode("utf-8"))

    def _send(self, status: int, headers: Mapping[str, Sequence[str]], body: bytes) -> None:
        self.send_response(status)
        for name, values in headers.items():
            if name.lower() == "content-length":
                continue
            for value in values:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], app: App, health_check: HealthCheck | None) -> None:
        super().__init__(address, _Handler)
        self.app = app
        self._health_check = health_check

    def healthy(self) -> bool:
        if self._health_check is None:
            return True
        try:
            return bool(self._health_check())
        except Exception:
            log.exception("health check failed")
            return False


class HttpServer:
    """A running HTTP-mode server. `stop()` shuts it down and waits for the serving thread."""

    def __init__(self, server: _Server, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Base URL reachable from this machine, e.g. `http://127.0.0.1:3000` (no trailing slash)."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}"

    @property
    def events_url(self) -> str:
        return self.url + EVENTS_PATH

    def wait(self, timeout: float | None = None) -> None:
        """Block until the server stops (for `rewind run` in the foreground)."""
        self._thread.join(timeout)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> "HttpServer":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def serve_http(app: App, port: int, host: str = "0.0.0.0", health_check: HealthCheck | None = None) -> HttpServer:
    """Serve `app` on `host:port` (port 0 picks a free one) from a background thread and return at once.

    `health_check` is called by `GET /healthz`; returning False or raising answers 503 (e.g. the store is down).
    """
    server = _Server((host, port), app, health_check)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="rewind-http", daemon=True
    )
    thread.start()
    log.info("HTTP mode listening on %s:%s%s", host, server.server_address[1], EVENTS_PATH)
    return HttpServer(server, thread)


__all__ = ["EVENTS_PATH", "HEALTH_PATH", "HttpServer", "serve_http"]
