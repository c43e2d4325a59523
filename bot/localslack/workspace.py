"""The stand-in's workspace state: channels, members, messages and threads, reactions, users, files, canvases, views.

One `Workspace` is what the Web API methods read and change; its ids and timestamps look like Slack's. Callers hold
`Workspace.lock` around every use, so calls are serialised like a log.
"""

import bisect
import itertools
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

BOT_USER_ID = "U0REWIND"
BOT_ID = "B0REWIND"
APP_ID = "A0REWIND"
TEAM_ID = "T0LOCAL"
WORKSPACE = "rewind-local"

_CHANNEL_NAME = re.compile(r"^[a-z0-9_\-]+$")

Params = dict[str, Any]


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


def ts_key(ts: str) -> tuple[int, int]:
    """A message ts as a (seconds, microseconds) pair that sorts in time order, whatever the digits after the dot."""
    seconds, _, micros = ts.partition(".")
    return int(seconds), int(micros.ljust(6, "0")[:6] or 0)


def _format_ts(micros: int) -> str:
    return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"


def flag(value: Any) -> bool:
    """A boolean Web API parameter, which arrives as `true`, `1` or a real bool."""
    return str(value).lower() in {"1", "true"}


class Workspace:
    """The state the Web API methods read and change. Hold `lock` around every use, so calls run one at a time."""

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
        seconds, micros = ts_key(ts)
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
        bisect.insort(self.messages[channel_id], message, key=lambda m: ts_key(m["ts"]))
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
        parent["latest_reply"] = max(parent.get("latest_reply", reply["ts"]), reply["ts"], key=ts_key)

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
            if flag(params.get("reply_broadcast")):
                message["subtype"] = "thread_broadcast"
        return message
