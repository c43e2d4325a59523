"""A local stand-in for the Slack Web API and the Socket Mode link, for tests, shell mode and benchmarks.

`LocalSlack().start()` serves on 127.0.0.1 (a free port). Point `WebClient(base_url=stand_in.url)` at it. It keeps a
little workspace state (channels, messages, threads, reactions, users, files, canvases, views) so the bot sees Slack's
answers and errors, and it records every call. Socket Mode: `apps.connections.open` hands out a `ws://` URL on the same
server, which speaks enough RFC 6455 for slack_sdk's builtin `SocketModeClient`.
"""

import base64
import bisect
import contextlib
import hashlib
import itertools
import json
import logging
import re
import struct
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socket import SHUT_RDWR, socket
from typing import Any, BinaryIO, Literal
from urllib.parse import parse_qs, urlsplit

log = logging.getLogger(__name__)

BOT_USER_ID = "U0REWIND"
BOT_ID = "B0REWIND"
APP_ID = "A0REWIND"
TEAM_ID = "T0LOCAL"
WORKSPACE = "rewind-local"

# Parameters that slack_sdk sends JSON-encoded inside form bodies; decoded so recorded params look the same either way.
_JSON_PARAMS = frozenset({"blocks", "attachments", "view", "files", "metadata", "document_content", "changes"})
_CHANNEL_NAME = re.compile(r"^[a-z0-9_\-]+$")
_WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_NO_AUTH_METHODS = frozenset({"api.test"})

PayloadType = Literal["slash_commands", "events_api", "interactive"]
Params = dict[str, Any]


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
class Upload:
    """A file uploaded through files.getUploadURLExternal + upload URL + files.completeUploadExternal."""

    file_id: str
    filename: str
    length: int
    data: bytes | None = None
    title: str | None = None
    channel_id: str | None = None
    initial_comment: str | None = None
    thread_ts: str | None = None
    completed: bool = False


class SlackError(Exception):
    """Raised inside a method implementation; becomes `{"ok": false, "error": ...}`."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


@dataclass
class _Fault:
    error: str | None = None
    retry_after: int | None = None
    remaining: int = 1


def _ts_key(ts: str) -> tuple[int, int]:
    seconds, _, micros = ts.partition(".")
    return int(seconds), int(micros.ljust(6, "0")[:6] or 0)


def _format_ts(micros: int) -> str:
    return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"


def _encode_cursor(ts: str) -> str:
    return base64.b64encode(f"next_ts:{ts}".encode()).decode()


def _decode_cursor(cursor: str) -> str:
    try:
        text = base64.b64decode(cursor.encode(), validate=True).decode()
    except (ValueError, UnicodeDecodeError) as exc:
        raise SlackError("invalid_cursor") from exc
    if not text.startswith("next_ts:"):
        raise SlackError("invalid_cursor")
    return text.removeprefix("next_ts:")


def _flag(value: Any) -> bool:
    return str(value).lower() in {"1", "true"}


def _int_param(params: Params, name: str, default: int, low: int, high: int) -> int:
    raw = params.get(name)
    if raw in (None, ""):
        return default
    try:
        return max(low, min(high, int(raw)))
    except (TypeError, ValueError) as exc:
        raise SlackError("invalid_arguments") from exc


def _require(params: Params, name: str, error: str = "invalid_arguments") -> str:
    value = params.get(name)
    if value in (None, ""):
        raise SlackError(error)
    return str(value)


class _Workspace:
    """The state and the Web API methods. Every method runs under one lock, so calls are serialised like a log."""

    def __init__(self, upload_base: Callable[[], str], workspace: str) -> None:
        self.lock = threading.RLock()
        self.base_url = upload_base
        self.domain = workspace
        self._ids = itertools.count(1)
        self._last_ts = 0
        self.channels: dict[str, dict[str, Any]] = {}
        self.members: dict[str, set[str]] = {}
        self.messages: dict[str, list[dict[str, Any]]] = {}
        self.ephemeral: list[dict[str, Any]] = []
        self.users: dict[str, dict[str, Any]] = {}
        self.uploads: dict[str, Upload] = {}
        self.canvases: dict[str, dict[str, Any]] = {}
        self.views: dict[str, dict[str, Any]] = {}
        self.dms: dict[str, str] = {}
        self.usergroups: dict[str, list[str]] = {}
        self.add_user(BOT_USER_ID, "rewind", real_name="Rewind", is_bot=True)

    # ---- ids, timestamps, lookups

    def new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):09d}"

    def next_ts(self) -> str:
        """Time-based like Slack's, strictly increasing so two posts in one microsecond (or frozen time) differ."""
        micros = max(int(time.time() * 1_000_000), self._last_ts + 1)
        self._last_ts = micros
        return _format_ts(micros)

    def claim_ts(self, ts: str) -> None:
        seconds, micros = _ts_key(ts)
        self._last_ts = max(self._last_ts, seconds * 1_000_000 + micros)

    def channel(self, channel_id: str) -> dict[str, Any]:
        if channel_id in self.channels:
            return self.channels[channel_id]
        by_name = self._by_name(channel_id.removeprefix("#"))
        if by_name is not None:
            return by_name
        if channel_id.startswith(("U", "W")) and channel_id in self.users:
            return self.channels[self.open_dm(channel_id)]
        raise SlackError("channel_not_found")

    def _by_name(self, name: str) -> dict[str, Any] | None:
        return next((c for c in self.channels.values() if c.get("name") == name), None)

    def find_message(self, channel_id: str, ts: str) -> dict[str, Any]:
        for message in self.messages.get(channel_id, []):
            if message["ts"] == ts:
                return message
        raise SlackError("message_not_found")

    def channel_view(self, channel_id: str) -> dict[str, Any]:
        view = dict(self.channels[channel_id])
        members = self.members[channel_id]
        view.update(is_member=BOT_USER_ID in members, num_members=len(members))
        return view

    # ---- state helpers used by the public API and by methods

    def add_channel(
        self, name: str, channel_id: str | None = None, members: Iterable[str] = (), is_private: bool = False
    ) -> str:
        self._check_channel_name(name)
        channel_id = channel_id or self.new_id("G" if is_private else "C")
        now = int(time.time())
        self.channels[channel_id] = {
            "id": channel_id,
            "name": name,
            "name_normalized": name,
            "is_channel": not is_private,
            "is_group": False,
            "is_im": False,
            "is_mpim": False,
            "is_private": is_private,
            "is_archived": False,
            "is_general": False,
            "created": now,
            "creator": BOT_USER_ID,
            "context_team_id": TEAM_ID,
            "topic": {"value": "", "creator": "", "last_set": 0},
            "purpose": {"value": "", "creator": "", "last_set": 0},
            "properties": {},
        }
        self.members[channel_id] = set(members)
        self.messages[channel_id] = []
        return channel_id

    def _check_channel_name(self, name: str) -> None:
        if not name:
            raise SlackError("invalid_name_required")
        if len(name) > 80:
            raise SlackError("invalid_name_maxlength")
        if not _CHANNEL_NAME.match(name):
            raise SlackError("invalid_name_specials")
        if self._by_name(name) is not None:
            raise SlackError("name_taken")

    def open_dm(self, user_id: str) -> str:
        if user_id not in self.dms:
            dm_id = self.new_id("D")
            self.channels[dm_id] = {"id": dm_id, "is_im": True, "user": user_id, "created": int(time.time())}
            self.members[dm_id] = {user_id, BOT_USER_ID}
            self.messages[dm_id] = []
            self.dms[user_id] = dm_id
        return self.dms[user_id]

    def add_user(
        self,
        user_id: str,
        name: str,
        real_name: str | None = None,
        display_name: str | None = None,
        tz: str = "UTC",
        is_bot: bool = False,
    ) -> None:
        real_name = real_name or name
        display_name = display_name if display_name is not None else name
        self.users[user_id] = {
            "id": user_id,
            "team_id": TEAM_ID,
            "name": name,
            "deleted": False,
            "real_name": real_name,
            "tz": tz,
            "tz_offset": 0,
            "is_bot": is_bot,
            "is_app_user": False,
            "profile": {
                "real_name": real_name,
                "real_name_normalized": real_name,
                "display_name": display_name,
                "display_name_normalized": display_name,
                "team": TEAM_ID,
            },
        }

    def store_message(self, channel_id: str, message: dict[str, Any]) -> dict[str, Any]:
        """Insert in ts order (injected messages may carry an older ts) and thread it under its parent."""
        message.setdefault("type", "message")
        message.setdefault("team", TEAM_ID)
        bisect.insort(self.messages[channel_id], message, key=lambda m: _ts_key(m["ts"]))
        thread_ts = message.get("thread_ts")
        if thread_ts and thread_ts != message["ts"]:
            self._bump_parent(channel_id, thread_ts, message)
        return message

    def _bump_parent(self, channel_id: str, thread_ts: str, reply: dict[str, Any]) -> None:
        try:
            parent = self.find_message(channel_id, thread_ts)
        except SlackError:
            return  # Slack accepts replies to unknown parents; so do we
        parent["thread_ts"] = thread_ts
        parent["reply_count"] = parent.get("reply_count", 0) + 1
        users = parent.setdefault("reply_users", [])
        if reply.get("user") and reply["user"] not in users:
            users.append(reply["user"])
        parent["reply_users_count"] = len(users)
        parent["latest_reply"] = max(parent.get("latest_reply", reply["ts"]), reply["ts"], key=_ts_key)

    def add_reaction(self, channel_id: str, ts: str, user: str, name: str) -> None:
        message = self.find_message(self.channel(channel_id)["id"], ts)
        reactions = message.setdefault("reactions", [])
        entry = next((r for r in reactions if r["name"] == name), None)
        if entry is None:
            entry = {"name": name, "users": [], "count": 0}
            reactions.append(entry)
        if user in entry["users"]:
            raise SlackError("already_reacted")
        entry["users"].append(user)
        entry["count"] = len(entry["users"])

    def remove_reaction(self, channel_id: str, ts: str, user: str, name: str) -> None:
        message = self.find_message(self.channel(channel_id)["id"], ts)
        reactions = message.get("reactions", [])
        entry = next((r for r in reactions if r["name"] == name and user in r["users"]), None)
        if entry is None:
            raise SlackError("no_reaction")
        entry["users"].remove(user)
        entry["count"] = len(entry["users"])
        if not entry["users"]:
            reactions.remove(entry)
        if not reactions:
            message.pop("reactions", None)

    def permalink(self, channel_id: str, ts: str) -> str:
        link = f"https://{self.domain}.slack.com/archives/{channel_id}/p{ts.replace('.', '')}"
        message = self.find_message(channel_id, ts)
        thread_ts = message.get("thread_ts")
        if thread_ts and thread_ts != ts:
            link += f"?thread_ts={thread_ts}&cid={channel_id}"
        return link

    def bot_message(self, params: Params, ts: str) -> dict[str, Any]:
        message: dict[str, Any] = {
            "type": "message",
            "user": BOT_USER_ID,
            "bot_id": BOT_ID,
            "app_id": APP_ID,
            "text": params.get("text") or "",
            "ts": ts,
            "team": TEAM_ID,
        }
        for key in ("blocks", "attachments", "metadata"):
            if params.get(key):
                message[key] = params[key]
        if params.get("thread_ts"):
            message["thread_ts"] = str(params["thread_ts"])
            if _flag(params.get("reply_broadcast")):
                message["subtype"] = "thread_broadcast"
        return message


def _page(items: list[dict[str, Any]], params: Params, default_limit: int, newest_first: bool) -> dict[str, Any]:
    """Slack-style cursor paging over a ts-ordered list. The cursor names the ts to resume from."""
    limit = _int_param(params, "limit", default_limit, 1, 1000)
    start = 0
    if params.get("cursor"):
        key = _ts_key(_decode_cursor(str(params["cursor"])))
        keys = [_ts_key(m["ts"]) for m in items]
        start = next((i for i, k in enumerate(keys) if (k <= key if newest_first else k >= key)), len(items))
    page = items[start : start + limit]
    has_more = start + limit < len(items)
    result: dict[str, Any] = {"messages": page, "has_more": has_more}
    result["response_metadata"] = {"next_cursor": _encode_cursor(items[start + limit]["ts"]) if has_more else ""}
    return result


def _window(messages: list[dict[str, Any]], params: Params) -> list[dict[str, Any]]:
    inclusive = _flag(params.get("inclusive"))
    oldest = _ts_key(str(params["oldest"])) if params.get("oldest") not in (None, "") else None
    latest = _ts_key(str(params["latest"])) if params.get("latest") not in (None, "") else None

    def inside(message: dict[str, Any]) -> bool:
        key = _ts_key(message["ts"])
        if oldest is not None and (key < oldest or (key == oldest and not inclusive)):
            return False
        return latest is None or key < latest or (key == latest and inclusive)

    return [m for m in messages if inside(m)]


class _WebApi:
    """Maps method names to implementations over a `_Workspace`."""

    def __init__(self, ws: _Workspace) -> None:
        self.ws = ws
        self.methods: dict[str, Callable[[Params, str | None], dict[str, Any]]] = {
            "api.test": lambda p, _t: {"args": p},
            "auth.test": self.auth_test,
            "apps.connections.open": self.apps_connections_open,
            "conversations.create": self.conversations_create,
            "conversations.info": self.conversations_info,
            "conversations.invite": self.conversations_invite,
            "conversations.join": self.conversations_join,
            "conversations.members": self.conversations_members,
            "conversations.list": self.conversations_list,
            "conversations.open": self.conversations_open,
            "conversations.history": self.conversations_history,
            "conversations.replies": self.conversations_replies,
            "conversations.canvases.create": self.conversations_canvases_create,
            "chat.postMessage": self.chat_post_message,
            "chat.postEphemeral": self.chat_post_ephemeral,
            "chat.update": self.chat_update,
            "chat.delete": self.chat_delete,
            "chat.getPermalink": self.chat_get_permalink,
            "reactions.add": self.reactions_add,
            "reactions.remove": self.reactions_remove,
            "reactions.get": self.reactions_get,
            "users.info": self.users_info,
            "users.list": self.users_list,
            "usergroups.users.list": self.usergroups_users_list,
            "files.getUploadURLExternal": self.files_get_upload_url,
            "files.completeUploadExternal": self.files_complete_upload,
            "files.info": self.files_info,
            "canvases.create": self.canvases_create,
            "canvases.edit": self.canvases_edit,
            "views.open": self.views_open,
            "views.push": self.views_open,
            "views.update": self.views_update,
            "views.publish": self.views_publish,
        }

    # ---- auth and socket mode

    def auth_test(self, _p: Params, _token: str | None) -> dict[str, Any]:
        return {
            "url": f"https://{self.ws.domain}.slack.com/",
            "team": "Rewind Local",
            "user": "rewind",
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def apps_connections_open(self, _p: Params, token: str | None) -> dict[str, Any]:
        if not (token or "").startswith("xapp-"):
            raise SlackError("not_allowed_token_type")
        return {"url": self.ws_url()}

    def ws_url(self) -> str:
        return self.ws_base().replace("http://", "ws://", 1) + "/link"

    def ws_base(self) -> str:
        return self.ws.base_url()

    # ---- conversations

    def conversations_create(self, p: Params, _t: str | None) -> dict[str, Any]:
        name = str(p.get("name") or "")
        channel_id = self.ws.add_channel(name, members=[BOT_USER_ID], is_private=_flag(p.get("is_private")))
        return {"channel": self.ws.channel_view(channel_id)}

    def conversations_info(self, p: Params, _t: str | None) -> dict[str, Any]:
        channel = self.ws.channel(_require(p, "channel", "channel_not_found"))
        return {"channel": self.ws.channel_view(channel["id"])}

    def conversations_invite(self, p: Params, _t: str | None) -> dict[str, Any]:
        channel_id = self.ws.channel(_require(p, "channel", "channel_not_found"))["id"]
        users = [u.strip() for u in _require(p, "users", "no_user").split(",") if u.strip()]
        unknown = [u for u in users if u not in self.ws.users]
        if unknown:
            raise SlackError("user_not_found")
        members = self.ws.members[channel_id]
        if all(u in members for u in users):
            raise SlackError("already_in_channel")
        members.update(users)
        return {"channel": self.ws.channel_view(channel_id)}

    def conversations_join(self, p: Params, _t: str | None) -> dict[str, Any]:
        channel_id = self.ws.channel(_require(p, "channel", "channel_not_found"))["id"]
        members = self.ws.members[channel_id]
        result: dict[str, Any] = {}
        if BOT_USER_ID in members:
            result["warning"] = "already_in_channel"
        members.add(BOT_USER_ID)
        return {**result, "channel": self.ws.channel_view(channel_id)}

    def conversations_members(self, p: Params, _t: str | None) -> dict[str, Any]:
        channel_id = self.ws.channel(_require(p, "channel", "channel_not_found"))["id"]
        return {"members": sorted(self.ws.members[channel_id]), "response_metadata": {"next_cursor": ""}}

    def conversations_list(self, _p: Params, _t: str | None) -> dict[str, Any]:
        channels = [self.ws.channel_view(c) for c, v in self.ws.channels.items() if not v.get("is_im")]
        return {"channels": channels, "response_metadata": {"next_cursor": ""}}

    def conversations_open(self, p: Params, _t: str | None) -> dict[str, Any]:
        user = _require(p, "users", "users_list_not_supplied").split(",")[0]
        if user not in self.ws.users:
            raise SlackError("user_not_found")
        return {"channel": {"id": self.ws.open_dm(user)}}

    def conversations_history(self, p: Params, _t: str | None) -> dict[str, Any]:
        channel_id = self.ws.channel(_require(p, "channel", "channel_not_found"))["id"]
        top = [
            m
            for m in self.ws.messages[channel_id]
            if m.get("thread_ts") in (None, m["ts"]) or m.get("subtype") == "thread_broadcast"
        ]
        newest_first = list(reversed(_window(top, p)))
        return _page(newest_first, p, default_limit=100, newest_first=True)

    def conversations_replies(self, p: Params, _t: str | None) -> dict[str, Any]:
        channel_id = self.ws.channel(_require(p, "channel", "channel_not_found"))["id"]
        ts = _require(p, "ts", "thread_not_found")
        try:
            self.ws.find_message(channel_id, ts)
        except SlackError as exc:
            raise SlackError("thread_not_found") from exc
        thread = [m for m in self.ws.messages[channel_id] if m["ts"] == ts or m.get("thread_ts") == ts]
        return _page(_window(thread, p) if (p.get("oldest") or p.get("latest")) else thread, p, 1000, False)

    def conversations_canvases_create(self, p: Params, _t: str | None) -> dict[str, Any]:
        channel = self.ws.channel(_require(p, "channel_id", "channel_not_found"))
        if "canvas" in channel.get("properties", {}):
            raise SlackError("channel_canvas_already_exists")
        canvas_id = self._new_canvas(p, channel["id"])
        channel.setdefault("properties", {})["canvas"] = {"file_id": canvas_id, "is_empty": False}
        return {"canvas_id": canvas_id}

    # ---- chat

    def chat_post_message(self, p: Params, _t: str | None) -> dict[str, Any]:
        channel_id = self.ws.channel(_require(p, "channel", "channel_not_found"))["id"]
        if not p.get("text") and not p.get("blocks") and not p.get("attachments"):
            raise SlackError("no_text")
        message = self.ws.store_message(channel_id, self.ws.bot_message(p, self.ws.next_ts()))
        return {"channel": channel_id, "ts": message["ts"], "message": dict(message)}

    def chat_post_ephemeral(self, p: Params, _t: str | None) -> dict[str, Any]:
        channel_id = self.ws.channel(_require(p, "channel", "channel_not_found"))["id"]
        user = _require(p, "user", "user_not_found")
        if user not in self.ws.users:
            raise SlackError("user_not_found")
        if not p.get("text") and not p.get("blocks") and not p.get("attachments"):
            raise SlackError("no_text")
        message = self.ws.bot_message(p, self.ws.next_ts())
        self.ws.ephemeral.append({**message, "channel": channel_id, "to_user": user})
        return {"message_ts": message["ts"]}

    def chat_update(self, p: Params, _t: str | None) -> dict[str, Any]:
        channel_id = self.ws.channel(_require(p, "channel", "channel_not_found"))["id"]
        message = self.ws.find_message(channel_id, _require(p, "ts", "message_not_found"))
        if message.get("bot_id") != BOT_ID:
            raise SlackError("cant_update_message")
        for key in ("text", "blocks", "attachments", "metadata"):
            if key in p:
                message[key] = p[key]
        message["edited"] = {"user": BOT_USER_ID, "ts": self.ws.next_ts()}
        return {"channel": channel_id, "ts": message["ts"], "text": message["text"], "message": dict(message)}

    def chat_delete(self, p: Params, _t: str | None) -> dict[str, Any]:
        channel_id = self.ws.channel(_require(p, "channel", "channel_not_found"))["id"]
        message = self.ws.find_message(channel_id, _require(p, "ts", "message_not_found"))
        if message.get("bot_id") != BOT_ID:
            raise SlackError("cant_delete_message")
        self.ws.messages[channel_id].remove(message)
        return {"channel": channel_id, "ts": message["ts"]}

    def chat_get_permalink(self, p: Params, _t: str | None) -> dict[str, Any]:
        channel_id = self.ws.channel(_require(p, "channel", "channel_not_found"))["id"]
        ts = _require(p, "message_ts", "message_not_found")
        return {"channel": channel_id, "permalink": self.ws.permalink(channel_id, ts)}

    # ---- reactions

    def reactions_add(self, p: Params, _t: str | None) -> dict[str, Any]:
        channel = _require(p, "channel", "channel_not_found")
        self.ws.add_reaction(channel, _require(p, "timestamp", "message_not_found"), BOT_USER_ID, self._emoji(p))
        return {}

    def reactions_remove(self, p: Params, _t: str | None) -> dict[str, Any]:
        channel = _require(p, "channel", "channel_not_found")
        self.ws.remove_reaction(channel, _require(p, "timestamp", "message_not_found"), BOT_USER_ID, self._emoji(p))
        return {}

    def reactions_get(self, p: Params, _t: str | None) -> dict[str, Any]:
        channel_id = self.ws.channel(_require(p, "channel", "channel_not_found"))["id"]
        message = self.ws.find_message(channel_id, _require(p, "timestamp", "message_not_found"))
        return {"type": "message", "channel": channel_id, "message": dict(message)}

    @staticmethod
    def _emoji(p: Params) -> str:
        name = _require(p, "name", "invalid_name").strip(":")
        if not name or " " in name:
            raise SlackError("invalid_name")
        return name

    # ---- users

    def users_info(self, p: Params, _t: str | None) -> dict[str, Any]:
        user = self.ws.users.get(_require(p, "user", "user_not_found"))
        if user is None:
            raise SlackError("user_not_found")
        return {"user": user}

    def usergroups_users_list(self, p: Params, _t: str | None) -> dict[str, Any]:
        group = self.ws.usergroups.get(_require(p, "usergroup", "no_such_subteam"))
        if group is None:
            raise SlackError("no_such_subteam")
        return {"users": list(group)}

    def users_list(self, _p: Params, _t: str | None) -> dict[str, Any]:
        return {"members": list(self.ws.users.values()), "response_metadata": {"next_cursor": ""}}

    # ---- files

    def files_get_upload_url(self, p: Params, _t: str | None) -> dict[str, Any]:
        filename = _require(p, "filename")
        length = _int_param(p, "length", -1, -1, 1 << 40)
        if length < 0:
            raise SlackError("invalid_arguments")
        file_id = self.ws.new_id("F")
        self.ws.uploads[file_id] = Upload(file_id=file_id, filename=filename, length=length)
        return {"upload_url": f"{self.ws_base()}/upload/{file_id}", "file_id": file_id}

    def files_complete_upload(self, p: Params, _t: str | None) -> dict[str, Any]:
        entries = p.get("files")
        if not isinstance(entries, list) or not entries:
            raise SlackError("invalid_arguments")
        uploads = [self._finish_upload(entry, p) for entry in entries]
        files = [self._file_object(u) for u in uploads]
        if p.get("channel_id"):
            self._share_files(str(p["channel_id"]), files, p)
        return {"files": files}

    def _finish_upload(self, entry: dict[str, Any], p: Params) -> Upload:
        upload = self.ws.uploads.get(str(entry.get("id")))
        if upload is None or upload.data is None:
            raise SlackError("file_not_found")
        upload.title = entry.get("title") or upload.filename
        upload.channel_id = p.get("channel_id") or None
        upload.initial_comment = p.get("initial_comment") or None
        upload.thread_ts = p.get("thread_ts") or None
        upload.completed = True
        return upload

    def _share_files(self, channel: str, files: list[dict[str, Any]], p: Params) -> None:
        channel_id = self.ws.channel(channel)["id"]
        message = self.ws.bot_message({"text": p.get("initial_comment") or "", "thread_ts": p.get("thread_ts")}, "")
        message.update(ts=self.ws.next_ts(), files=files, upload=True, subtype="file_share")
        self.ws.store_message(channel_id, message)

    def _file_object(self, upload: Upload) -> dict[str, Any]:
        return {
            "id": upload.file_id,
            "name": upload.filename,
            "title": upload.title,
            "size": len(upload.data or b""),
            "user": BOT_USER_ID,
            "created": int(time.time()),
            "url_private": f"{self.ws_base()}/files/{upload.file_id}",
            "permalink": f"https://{self.ws.domain}.slack.com/files/{BOT_USER_ID}/{upload.file_id}/{upload.filename}",
        }

    def files_info(self, p: Params, _t: str | None) -> dict[str, Any]:
        upload = self.ws.uploads.get(_require(p, "file", "file_not_found"))
        if upload is None or not upload.completed:
            raise SlackError("file_not_found")
        return {"file": self._file_object(upload)}

    # ---- canvases

    def canvases_create(self, p: Params, _t: str | None) -> dict[str, Any]:
        return {"canvas_id": self._new_canvas(p, p.get("channel_id") or None)}

    def _new_canvas(self, p: Params, channel_id: str | None) -> str:
        canvas_id = self.ws.new_id("F")
        self.ws.canvases[canvas_id] = {
            "id": canvas_id,
            "title": p.get("title"),
            "document_content": p.get("document_content"),
            "channel_id": channel_id,
            "changes": [],
        }
        return canvas_id

    def canvases_edit(self, p: Params, _t: str | None) -> dict[str, Any]:
        canvas = self.ws.canvases.get(_require(p, "canvas_id", "canvas_not_found"))
        if canvas is None:
            raise SlackError("canvas_not_found")
        canvas["changes"].extend(p.get("changes") or [])
        return {}

    # ---- views

    def views_open(self, p: Params, _t: str | None) -> dict[str, Any]:
        _require(p, "trigger_id", "invalid_trigger_id")
        return {"view": self._store_view(p, None)}

    def views_update(self, p: Params, _t: str | None) -> dict[str, Any]:
        external_id = p.get("external_id")
        by_external = (v["id"] for v in self.ws.views.values() if external_id and v.get("external_id") == external_id)
        view_id = p.get("view_id") or next(by_external, None)
        if view_id not in self.ws.views:
            raise SlackError("not_found")
        return {"view": self._store_view(p, str(view_id))}

    def views_publish(self, p: Params, _t: str | None) -> dict[str, Any]:
        user = _require(p, "user_id", "invalid_arguments")
        existing = next((k for k, v in self.ws.views.items() if v.get("_home_of") == user), None)
        view = self._store_view(p, existing)
        self.ws.views[view["id"]]["_home_of"] = user
        return {"view": view}

    def _store_view(self, p: Params, view_id: str | None) -> dict[str, Any]:
        spec = p.get("view")
        if not isinstance(spec, dict) or "type" not in spec:
            raise SlackError("invalid_arguments")
        view_id = view_id or self.ws.new_id("V")
        view = {**spec, "id": view_id, "team_id": TEAM_ID, "app_id": APP_ID, "bot_id": BOT_ID}
        view.update(hash=uuid.uuid4().hex[:16], state={"values": {}})
        self.ws.views[view_id] = view
        return {k: v for k, v in view.items() if not k.startswith("_")}


# ---------------------------------------------------------------- Socket Mode


class _Link:
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


class _SocketHub:
    """Open links, envelopes sent and the acks that came back."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.links: list[_Link] = []
        self.acks: dict[str, dict[str, Any]] = {}

    def attach(self, sock: socket) -> _Link:
        link = _Link(sock)
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

    def active(self) -> list[_Link]:
        with self.cond:
            return [link for link in self.links if link.open]

    def serve(self, link: _Link, stream: BinaryIO) -> None:
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

    def wait_for_link(self, timeout: float) -> _Link:
        with self.cond:
            if not self.cond.wait_for(lambda: bool(self._usable()), timeout):
                raise TimeoutError("no Socket Mode client is connected to the stand-in")
            return self._usable()[-1]

    def _usable(self) -> list[_Link]:
        return [link for link in self.links if link.open and not link.retiring]

    def wait_for_ack(self, envelope_id: str, timeout: float) -> dict[str, Any]:
        with self.cond:
            if not self.cond.wait_for(lambda: envelope_id in self.acks, timeout):
                raise TimeoutError(f"no ack for envelope {envelope_id} within {timeout}s")
            return self.acks[envelope_id]

    def close_all(self) -> None:
        for link in self.active():
            link.close()


# ---------------------------------------------------------------- HTTP


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
    server: "_Server"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the request line is noise here; calls are recorded instead

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == "/link" and self.headers.get("Upgrade", "").lower() == "websocket":
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
        status, response, headers = self.server.slack.handle(method, params, token)
        self.server.slack.record(RecordedCall(method, params, token, at, response, status))
        self._reply(status, response, headers)

    def _upload(self, file_id: str) -> None:
        body = self._body()
        if not self.server.slack.store_upload(file_id, body):
            self._reply(404, {"ok": False, "error": "file_not_found"})
            return
        self._reply_text(200, f"OK - {len(body)}")

    def _upgrade(self) -> None:
        key = self.headers.get("Sec-WebSocket-Key", "").strip()
        if not key:
            self._reply(400, {"ok": False, "error": "missing_websocket_key"})
            return
        accept = base64.b64encode(hashlib.sha1((key + _WS_GUID).encode()).digest()).decode()
        self.send_response(101, "Switching Protocols")
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.end_headers()
        self.wfile.flush()
        hub = self.server.slack.hub
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


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], slack: "LocalSlack") -> None:
        super().__init__(address, _Handler)
        self.slack = slack


CallListener = Callable[[RecordedCall], None]


class LocalSlack:
    """The stand-in. Thread-safe; use as a context manager or call `start()` / `stop()`."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, workspace: str = WORKSPACE) -> None:
        self._address = (host, port)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._ws = _Workspace(lambda: self.base_url, workspace)
        self._api = _WebApi(self._ws)
        self.hub = _SocketHub()
        self._calls: list[RecordedCall] = []
        self._calls_cond = threading.Condition()
        self._faults: dict[str, deque[_Fault]] = {}
        self._listeners: list[CallListener] = []

    # ---- lifecycle

    def start(self) -> "LocalSlack":
        self._server = _Server(self._address, self)
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

    def handle(self, method: str, params: Params, token: str | None) -> tuple[int, dict[str, Any], dict[str, str]]:
        fault = self._take_fault(method)
        if fault is not None and fault.retry_after is not None:
            return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(fault.retry_after)}
        if fault is not None:
            return 200, {"ok": False, "error": fault.error}, {}
        implementation = self._api.methods.get(method)
        if implementation is None:
            return 200, {"ok": False, "error": "unknown_method"}, {}
        if not token and method not in _NO_AUTH_METHODS:
            return 200, {"ok": False, "error": "not_authed"}, {}
        try:
            with self._ws.lock:
                return 200, {"ok": True, **implementation(params, token)}, {}
        except SlackError as exc:
            return 200, {"ok": False, "error": exc.error}, {}
        except Exception:
            log.exception("local Slack: %s failed", method)
            return 500, {"ok": False, "error": "internal_error"}, {}

    def record(self, call: RecordedCall) -> None:
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
        link = self.hub.wait_for_link(timeout)
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

    def wait_for_ack(self, envelope_id: str, timeout: float = 5) -> dict[str, Any]:
        """The client's ack: `{"envelope_id": ..., "payload": {...}}` (payload only when the app responded with one)."""
        return self.hub.wait_for_ack(envelope_id, timeout)

    def send_disconnect(self, reason: str = "refresh_requested") -> None:
        """Ask the connected client to reconnect, as Slack does every few hours."""
        link = self.hub.wait_for_link(1)
        link.retiring = True
        link.send(0x1, json.dumps({"type": "disconnect", "reason": reason}).encode())

    def close_socket_connections(self) -> None:
        """Close every Socket Mode connection from the server side (a client blocked in recv notices at once)."""
        self.hub.close_all()


__all__ = [
    "APP_ID",
    "BOT_ID",
    "BOT_USER_ID",
    "TEAM_ID",
    "LocalSlack",
    "RecordedCall",
    "SlackError",
    "Upload",
]
