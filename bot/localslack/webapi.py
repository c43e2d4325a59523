"""The Web API methods the stand-in answers (auth, conversations, chat, reactions, users, files, canvases, views).

Each method takes the call's parameters and token and returns the body Slack would, or raises `SlackError` for
`{"ok": false, "error": ...}`. Paging follows Slack's cursors.
"""

import base64
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from bot.localslack.socketmode import SOCKET_PATH
from bot.localslack.workspace import (
    APP_ID,
    BOT_ID,
    BOT_USER_ID,
    TEAM_ID,
    Params,
    SlackError,
    Upload,
    Workspace,
    flag,
    ts_key,
)

log = logging.getLogger(__name__)

_NO_AUTH_METHODS = frozenset({"api.test"})


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


def _page(items: list[dict[str, Any]], params: Params, default_limit: int, newest_first: bool) -> dict[str, Any]:
    """Slack-style cursor paging over a ts-ordered list. The cursor names the ts to resume from."""
    limit = _int_param(params, "limit", default_limit, 1, 1000)
    start = 0
    if params.get("cursor"):
        key = ts_key(_decode_cursor(str(params["cursor"])))
        keys = [ts_key(m["ts"]) for m in items]
        start = next((i for i, k in enumerate(keys) if (k <= key if newest_first else k >= key)), len(items))
    page = items[start : start + limit]
    has_more = start + limit < len(items)
    result: dict[str, Any] = {"messages": page, "has_more": has_more}
    result["response_metadata"] = {"next_cursor": _encode_cursor(items[start + limit]["ts"]) if has_more else ""}
    return result


def _window(messages: list[dict[str, Any]], params: Params) -> list[dict[str, Any]]:
    inclusive = flag(params.get("inclusive"))
    oldest = ts_key(str(params["oldest"])) if params.get("oldest") not in (None, "") else None
    latest = ts_key(str(params["latest"])) if params.get("latest") not in (None, "") else None

    def inside(message: dict[str, Any]) -> bool:
        key = ts_key(message["ts"])
        if oldest is not None and (key < oldest or (key == oldest and not inclusive)):
            return False
        return latest is None or key < latest or (key == latest and inclusive)

    return [m for m in messages if inside(m)]


class WebApi:
    """Maps method names to implementations over a `Workspace`."""

    def __init__(self, ws: Workspace) -> None:
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

    def call(self, method: str, params: Params, token: str | None) -> tuple[int, dict[str, Any]]:
        """Run one method under the workspace lock: the HTTP status and the JSON body Slack would answer with."""
        implementation = self.methods.get(method)
        if implementation is None:
            return 200, {"ok": False, "error": "unknown_method"}
        if not token and method not in _NO_AUTH_METHODS:
            return 200, {"ok": False, "error": "not_authed"}
        try:
            with self.ws.lock:
                return 200, {"ok": True, **implementation(params, token)}
        except SlackError as exc:
            return 200, {"ok": False, "error": exc.error}
        except Exception:
            log.exception("local Slack: %s failed", method)
            return 500, {"ok": False, "error": "internal_error"}

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
        return self.ws_base().replace("http://", "ws://", 1) + SOCKET_PATH

    def ws_base(self) -> str:
        return self.ws.base_url()

    # ---- conversations

    def conversations_create(self, p: Params, _t: str | None) -> dict[str, Any]:
        name = str(p.get("name") or "")
        channel_id = self.ws.add_channel(name, members=[BOT_USER_ID], is_private=flag(p.get("is_private")))
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
