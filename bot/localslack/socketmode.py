"""Socket Mode over the stand-in's WebSocket endpoint: the handshake key, RFC 6455 framing, and the hub.

The hub keeps the open links from Socket Mode clients, sends `hello`, envelopes and `disconnect` as Slack does, and
collects the acks that come back. It speaks enough RFC 6455 for slack_sdk's builtin `SocketModeClient`.
"""

import base64
import hashlib
import json
import logging
import struct
import threading
import uuid
from socket import SHUT_RDWR, socket
from typing import Any, BinaryIO, Literal

from bot.localslack.workspace import APP_ID

log = logging.getLogger(__name__)

SOCKET_PATH = "/link"  # where apps.connections.open points clients, and where the HTTP server upgrades them
_WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

PayloadType = Literal["slash_commands", "events_api", "interactive"]


def accept_key(key: str) -> str:
    """The `Sec-WebSocket-Accept` answer to a client's `Sec-WebSocket-Key` (RFC 6455 4.2.2)."""
    return base64.b64encode(hashlib.sha1((key + _WS_GUID).encode()).digest()).decode()


class Link:
    """One WebSocket connection from a Socket Mode client."""

    def __init__(self, sock: socket) -> None:
        self.sock = sock
        self.send_lock = threading.Lock()
        self.open = True
        self.retiring = False  # told to reconnect; closed once its replacement connects

    def send(self, opcode: int, payload: bytes) -> None:
        """Server-to-client frames are never masked (RFC 6455 5.1)."""
        length = len(payload)
        if length <= 125:
            header = struct.pack("!BB", 0x80 | opcode, length)
        elif length <= 0xFFFF:
            header = struct.pack("!BBH", 0x80 | opcode, 126, length)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 127, length)
        with self.send_lock:
            self.sock.sendall(header + payload)

    def close(self) -> None:
        if not self.open:
            return
        self.open = False
        try:
            self.send(0x8, struct.pack("!H", 1001))
            self.sock.shutdown(SHUT_RDWR)
        except OSError:
            pass


def _read_exact(stream: BinaryIO, size: int) -> bytes:
    data = stream.read(size) if size else b""
    if len(data) < size:
        raise ConnectionError("websocket closed")
    return data


def _read_frame(stream: BinaryIO) -> tuple[int, bool, bytes]:
    """Read one frame; client frames must be masked (RFC 6455 5.3)."""
    b1, b2 = _read_exact(stream, 2)
    length = b2 & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", _read_exact(stream, 2))
    elif length == 127:
        (length,) = struct.unpack("!Q", _read_exact(stream, 8))
    mask = _read_exact(stream, 4) if b2 & 0x80 else b""
    data = _read_exact(stream, length)
    if mask:
        data = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
    return b1 & 0x0F, bool(b1 & 0x80), data


class SocketHub:
    """Open links, envelopes sent and the acks that came back."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.links: list[Link] = []
        self.acks: dict[str, dict[str, Any]] = {}

    def attach(self, sock: socket) -> Link:
        link = Link(sock)
        with self.cond:
            retired = [old for old in self.links if old.retiring]
            self.links = [old for old in self.links if old.open and not old.retiring] + [link]
            self.cond.notify_all()
        for old in retired:
            old.close()
        hello = {
            "type": "hello",
            "num_connections": len(self.active()),
            "debug_info": {"host": "applink-local", "build_number": 1, "approximate_connection_time": 3600},
            "connection_info": {"app_id": APP_ID},
        }
        link.send(0x1, json.dumps(hello).encode())
        return link

    def active(self) -> list[Link]:
        with self.cond:
            return [link for link in self.links if link.open]

    def serve(self, link: Link, stream: BinaryIO) -> None:
        fragments: list[bytes] = []
        try:
            while link.open:
                opcode, fin, data = _read_frame(stream)
                if opcode == 0x8:
                    break
                if opcode == 0x9:
                    link.send(0xA, data)
                elif opcode in (0x1, 0x0):
                    fragments.append(data)
                    if fin:
                        self._on_text(b"".join(fragments))
                        fragments.clear()
        except (ConnectionError, OSError, ValueError):
            pass
        finally:
            link.close()
            with self.cond:
                self.cond.notify_all()

    def _on_text(self, data: bytes) -> None:
        try:
            message = json.loads(data)
        except ValueError:
            log.warning("socket mode: a non-JSON text frame from the client was ignored")
            return
        if isinstance(message, dict) and message.get("envelope_id"):
            with self.cond:
                self.acks[str(message["envelope_id"])] = message
                self.cond.notify_all()

    def wait_for_link(self, timeout: float) -> Link:
        with self.cond:
            if not self.cond.wait_for(lambda: bool(self._usable()), timeout):
                raise TimeoutError("no Socket Mode client is connected to the stand-in")
            return self._usable()[-1]

    def _usable(self) -> list[Link]:
        return [link for link in self.links if link.open and not link.retiring]

    def wait_for_ack(self, envelope_id: str, timeout: float) -> dict[str, Any]:
        with self.cond:
            if not self.cond.wait_for(lambda: envelope_id in self.acks, timeout):
                raise TimeoutError(f"no ack for envelope {envelope_id} within {timeout}s")
            return self.acks[envelope_id]

    def send_envelope(
        self,
        payload_type: PayloadType,
        payload: dict[str, Any],
        *,
        retry_attempt: int = 0,
        retry_reason: str = "",
        timeout: float = 5,
    ) -> str:
        """Send an envelope to the newest usable link, as Slack does. Returns its envelope_id."""
        link = self.wait_for_link(timeout)
        envelope_id = str(uuid.uuid4())
        envelope: dict[str, Any] = {
            "envelope_id": envelope_id,
            "payload": payload,
            "type": payload_type,
            "accepts_response_payload": payload_type != "events_api",
        }
        if payload_type == "events_api":
            envelope.update(retry_attempt=retry_attempt, retry_reason=retry_reason)
        link.send(0x1, json.dumps(envelope).encode())
        return envelope_id

    def send_disconnect(self, reason: str) -> None:
        """Tell the newest link to reconnect; it is closed once its replacement attaches."""
        link = self.wait_for_link(1)
        link.retiring = True
        link.send(0x1, json.dumps({"type": "disconnect", "reason": reason}).encode())

    def close_all(self) -> None:
        for link in self.active():
            link.close()
