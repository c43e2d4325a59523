"""Shell mode: a terminal channel, like Hubot's shell adapter.

Typed lines become Slack traffic for the real Bolt app: `/inc …` is a signed slash command, plain text is a
message, `+pushpin 3` reacts to message 3. The app's WebClient talks to the local Slack stand-in, and what the
bot posts there is printed here. Same app, same handlers, same store as in production.
"""

import json
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlencode

from slack_bolt import App
from slack_bolt.request import BoltRequest

from bot.app import LOCAL_SIGNING_SECRET
from bot.grammar.slacktext import escape, unescape
from bot.localslack import wire as slackwire
from bot.localslack.standin import LocalSlack, RecordedCall
from bot.localslack.workspace import BOT_USER_ID, SlackError
from bot.manifest import ADD_TO_TIMELINE, with_slash_command
from bot.services import Services

SHELL_USER = ("U0SHELL", "you")
_MENTION = re.compile(r"<@([A-Z0-9]+)(?:\|[^>]*)?>")
_MARKUP = re.compile(r"(<[@#!][^<>\s]+>)")
HOME_CHANNEL = "general"
CANVAS_WRITES = frozenset({"canvases.create", "conversations.canvases.create", "canvases.edit"})
SHELL_HELP = """\
Type a message, or a slash command such as `/inc declare Prices vanished`.
  +pushpin 3 / -pushpin 3     react to message 3 (any emoji name), or take the reaction back
  :edit 3 new text            edit message 3
  :shortcut 3                 run "Add to timeline" on message 3
  :join NAME                  switch channel          :channels   list channels
  :user NAME                  speak as someone else   :quit       leave (or Ctrl-D)"""


class Shell:
    def __init__(
        self,
        services: Services,
        slack: LocalSlack,
        app: App,
        out: TextIO,
        wait_for_work: Callable[[], None] | None = None,
    ) -> None:
        self.services, self.slack, self.app, self.out = services, slack, app, out
        self.wait_for_work = wait_for_work  # piped input: each line's background work finishes before the next
        self.user_id, self.user_name = SHELL_USER
        self.numbers: dict[str, list[str]] = {}
        self.files = SavedFiles(services.settings.shell_files_dir)
        self._visited: set[str] = set()
        self._print_lock = threading.Lock()
        self.slack.add_user(self.user_id, self.user_name, real_name="You (shell)")
        self.channel_id = self.slack.add_channel(HOME_CHANNEL, members=[self.user_id, BOT_USER_ID])
        self._unsubscribe = self.slack.on_call(self._show_bot_call)

    # --- input ------------------------------------------------------------------------------------------------

    def run(self, lines: Iterable[str], *, opening: Sequence[str] = (), banner: str | None = None) -> None:
        self._say(f"Rewind shell: you are in #{self._channel_name()}. Type :help for help.")
        for line in opening:
            self._step(line)
        if banner:
            self._say(banner)
        for raw in lines:
            line = raw.strip()
            if line and not self._step(line):
                break
        self._unsubscribe()

    def _step(self, line: str) -> bool:
        going_on = self.handle(line)
        if self.wait_for_work:
            self.wait_for_work()
        return going_on

    def handle(self, line: str) -> bool:
        """Handle one typed line; False means quit."""
        if line in (":quit", ":q", "exit"):
            return False
        try:
            self._route(line)
        except SlackError as exc:
            self._say(f"(shell) Slack says {exc.error}.")
        except (ValueError, IndexError, KeyError) as exc:
            self._say(f"(shell) {exc}. Type :help for help.")
        return True

    def _route(self, line: str) -> None:
        if line.startswith("/"):
            self._slash(line)
        elif line[0] in "+-" and len(line.split()) == 2 and line.split()[1].isdigit():
            self._react(line[0] == "+", line[1:].split()[0], int(line.split()[1]))
        elif line.startswith(":"):
            self._meta(line)
        else:
            self._message(line)

    def _meta(self, line: str) -> None:
        verb, _, rest = line.partition(" ")
        if verb == ":help":
            self._say(with_slash_command(SHELL_HELP, self.services.settings.slash_command))
        elif verb == ":join":
            self.channel_id = self.slack.channel(rest.strip().lstrip("#"))["id"]
            self._say(f"(shell) now in #{self._channel_name()}")
        elif verb == ":channels":
            for channel_id in self.numbers or {self.channel_id: []}:
                self._say(f"#{self.slack.channel(channel_id)['name']}")
        elif verb == ":user":
            name = rest.strip() or "you"
            self.user_id, self.user_name = f"U0{name.upper()[:8]}", name
            self.slack.add_user(self.user_id, name, real_name=name.capitalize())
            self._say(f"(shell) you are now {name}")
        elif verb == ":edit":
            number, _, text = rest.partition(" ")
            self._edit(int(number), text)
        elif verb == ":shortcut":
            self._shortcut(int(rest))
        else:
            raise ValueError(f"unknown shell command {verb}")

    # --- Slack traffic --------------------------------------------------------------------------------------------

    def _slash(self, line: str) -> None:
        command, _, text = line.partition(" ")
        text = as_slack_sends(text)
        fields = slackwire.slash_command(
            text, self.user_id, self.channel_id, self._channel_name(), command, user_name=self.user_name
        )
        response = self._dispatch(urlencode(fields), slackwire.FORM)
        if response.get("text"):
            self._say(f"(only you) rewind: {response['text']}")
        self._follow_new_channel()

    def _message(self, text: str) -> None:
        text = as_slack_sends(text)
        ts = self.slack.post_as_user(self.channel_id, self.user_id, text)
        self._show(self.channel_id, ts, self.user_name, text)
        self._event(slackwire.message_event(text, self.channel_id, self.user_id, ts))

    def _react(self, added: bool, emoji: str, number: int) -> None:
        ts = self._ts(number)
        author = self.slack.message(self.channel_id, ts).get("user", "")
        change = self.slack.react_as_user if added else self.slack.unreact_as_user
        change(self.channel_id, ts, self.user_id, emoji)
        build = slackwire.reaction_added if added else slackwire.reaction_removed
        self._event(build(emoji, self.channel_id, ts, self.user_id, author))

    def _edit(self, number: int, text: str) -> None:
        ts = self._ts(number)
        old = self.slack.message(self.channel_id, ts)
        event = slackwire.message_changed(self.channel_id, ts, text, old.get("text", ""), old.get("user", self.user_id))
        old["text"] = text
        self._say(f"(shell) edited [{number}]")
        self._event(event)

    def _shortcut(self, number: int) -> None:
        message = dict(self.slack.message(self.channel_id, self._ts(number)))
        payload = slackwire.message_shortcut(
            ADD_TO_TIMELINE, message, self.channel_id, self.user_id, self._channel_name()
        )
        self._dispatch(slackwire.form_payload(payload), slackwire.FORM)

    def _event(self, event: dict[str, Any]) -> None:
        self._dispatch(json.dumps(slackwire.event_callback(event)), slackwire.JSON)

    def _dispatch(self, body: str, content_type: str) -> dict[str, Any]:
        headers = slackwire.sign(LOCAL_SIGNING_SECRET, body, content_type=content_type)
        response = self.app.dispatch(BoltRequest(body=body, headers={k: [v] for k, v in headers.items()}))
        if response.status >= 400:
            self._say(f"(shell) the app answered {response.status}: {response.body}")
            return {}
        return _json_or_empty(response.body)

    # --- output -----------------------------------------------------------------------------------------------

    def _show_bot_call(self, call: RecordedCall) -> None:
        if not call.ok:
            return
        params = call.params
        if call.method == "chat.postMessage":
            channel, ts = call.response["channel"], call.response["ts"]
            prefix = "  ↳ " if params.get("thread_ts") else ""
            self._show(channel, ts, "rewind", params.get("text", ""), prefix)
        elif call.method == "chat.postEphemeral":
            self._say(f"(only you) rewind: {params.get('text', '')}")
        elif call.method == "chat.update":
            number = self._number(call.response["channel"], call.response["ts"])
            self._say(f"(edited) [{number}] rewind: {params.get('text', '')}")
        elif call.method == "reactions.add":
            number = self._number(params["channel"], params["timestamp"])
            self._say(f"rewind reacted :{params['name']}: to [{number}]")
        elif call.method == "files.completeUploadExternal":
            self._show_uploads(call)
        elif call.method in CANVAS_WRITES:
            self._show_canvas(call)

    def _show_uploads(self, call: RecordedCall) -> None:
        """Slack shows an uploaded file in the channel; the terminal saves it and says where."""
        uploads = {u.file_id: u for u in self.slack.uploads()}
        channel = call.params.get("channel_id") or self.channel_id
        for file in call.response.get("files", []):
            upload = uploads[file["id"]]
            path = self.files.save(upload.filename, upload.data or b"")
            number = self._number(channel, self._file_message_ts(channel, file["id"]))
            self._say(f"[{number}] rewind uploaded {upload.filename} → {path}")

    def _file_message_ts(self, channel: str, file_id: str) -> str:
        for message in reversed(self.slack.messages(channel)):
            if any(f.get("id") == file_id for f in message.get("files", [])):
                return str(message["ts"])
        return f"file:{file_id}"

    def _show_canvas(self, call: RecordedCall) -> None:
        canvas_id = call.response.get("canvas_id") or call.params.get("canvas_id")
        canvas = next((c for c in self.slack.canvases() if c["id"] == canvas_id), None)
        if canvas is None:
            return
        title = canvas.get("title") or self.slack.channel(canvas.get("channel_id") or self.channel_id)["name"]
        path = self.files.save(f"canvas-{_slug(str(title))}.md", canvas_markdown(canvas).encode(), replace=True)
        verb = "updated" if call.method == "canvases.edit" else "wrote"
        self._say(f"rewind {verb} the canvas “{title}” → {path}")

    def _show(self, channel: str, ts: str, who: str, text: str, prefix: str = "") -> None:
        number = self._number(channel, ts)
        where = "" if channel == self.channel_id else f"#{self.slack.channel(channel)['name']} "
        self._say(f"{prefix}{where}[{number}] {who}: {text}")

    def _number(self, channel: str, ts: str) -> int:
        seen = self.numbers.setdefault(channel, [])
        if ts not in seen:
            seen.append(ts)
        return seen.index(ts) + 1

    def _ts(self, number: int) -> str:
        seen = self.numbers.get(self.channel_id, [])
        if not 1 <= number <= len(seen):
            raise ValueError(f"there is no message {number} in #{self._channel_name()}")
        return seen[number - 1]

    def _follow_new_channel(self) -> None:
        """After `/inc declare`, move into the incident channel the bot created, as Slack would show it."""
        created = [c for c in self.slack.calls("conversations.create") if c.ok]
        if created:
            newest = created[-1].response["channel"]["id"]
            if newest != self.channel_id and newest not in self._visited:
                self._visited.add(newest)
                self.channel_id = newest
                self._say(f"(shell) now in #{self._channel_name()}")

    def _channel_name(self) -> str:
        return str(self.slack.channel(self.channel_id)["name"])

    def _names(self, text: str) -> str:
        """Slack renders `<@U…>` as the person's name and undoes its escapes; so does the terminal."""
        return unescape(_MENTION.sub(lambda m: "@" + self.slack.user_name(m.group(1)), text))

    def _say(self, text: str) -> None:
        with self._print_lock:
            print(self._names(text), file=self.out, flush=True)


class SavedFiles:
    """Where the terminal keeps what the bot uploads: one folder, a new name for each file unless told to replace."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def save(self, filename: str, data: bytes, *, replace: bool = False) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        name = Path(filename).name or "file"
        path = self.folder / name
        stem, suffix = path.stem, path.suffix
        copy = 2
        while path.exists() and not replace:
            path = self.folder / f"{stem}-{copy}{suffix}"
            copy += 1
        path.write_bytes(data)
        return path


def canvas_markdown(canvas: dict[str, Any]) -> str:
    """The canvas as its Markdown: the document it was created with, then each replace or insert in order."""
    text = _markdown_of(canvas.get("document_content"))
    for change in canvas.get("changes", []):
        content = _markdown_of(change.get("document_content"))
        if change.get("operation") == "replace":
            text = content
        elif change.get("operation") == "insert_at_start":
            text = content + text
        else:
            text += content
    return text


def _markdown_of(document: Any) -> str:
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except ValueError:
            return document
    return str(document.get("markdown", "")) if isinstance(document, dict) else ""


def as_slack_sends(typed: str) -> str:
    """Typed text as Slack delivers it: `&`, `<` and `>` escaped, markup typed as such (`<@U123>`) left alone."""
    parts = _MARKUP.split(typed)
    return "".join(part if _MARKUP.fullmatch(part) else escape(part) for part in parts)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "canvas"


def _json_or_empty(body: str) -> dict[str, Any]:
    try:
        loaded = json.loads(body) if body else {}
    except ValueError:
        return {"text": body}
    return loaded if isinstance(loaded, dict) else {}
