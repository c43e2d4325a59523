"""Slack's messages, channels and users as plain pydantic models: an export's JSON and the Web API's are the same."""

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bot.grammar.slacktext import unescape
from bot.grammar.times import slack_ts_to_datetime
from bot.scribe.names import name_from_profile

_TS = re.compile(r"^\d{1,12}(?:\.\d{1,6})?$")


class SlackModel(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Reaction(SlackModel):
    name: str
    users: list[str] = Field(default_factory=list)


class FileRef(SlackModel):
    name: str | None = None
    title: str | None = None


class BotProfile(SlackModel):
    id: str | None = None
    app_id: str | None = None
    name: str | None = None


class Metadata(SlackModel):
    """What an app attached to its message (chat.postMessage `metadata`); nobody else can set it."""

    event_type: str = ""
    event_payload: dict[str, Any] = Field(default_factory=dict)


class SlackMessage(SlackModel):
    ts: str
    type: str = "message"
    subtype: str | None = None
    user: str | None = None
    bot_id: str | None = None
    app_id: str | None = None
    username: str | None = None
    bot_profile: BotProfile | None = None
    metadata: Metadata | None = None
    text: str = ""
    thread_ts: str | None = None
    reactions: list[Reaction] = Field(default_factory=list)
    files: list[FileRef] = Field(default_factory=list)

    @field_validator("ts")
    @classmethod
    def _ts(cls, value: str) -> str:
        if not _TS.match(value):
            raise ValueError(f"{value!r} is not a Slack timestamp like 1769078520.000100")
        return value

    @property
    def key(self) -> tuple[int, int]:
        seconds, _, micros = self.ts.partition(".")
        return int(seconds), int(micros.ljust(6, "0"))

    @property
    def posted(self) -> datetime:
        return slack_ts_to_datetime(self.ts)

    @property
    def is_bot(self) -> bool:
        return bool(self.bot_id) or self.subtype == "bot_message"

    @property
    def author_id(self) -> str:
        return self.user or self.bot_id or "unknown"

    @property
    def app(self) -> str | None:
        """The app that posted it: top-level in the API's messages, in the bot profile in exports."""
        return self.app_id or (self.bot_profile.app_id if self.bot_profile else None)

    @property
    def bot_name(self) -> str:
        profile = self.bot_profile.name if self.bot_profile else None
        return self.username or profile or self.author_id

    def reactors(self, emoji: str) -> list[str]:
        return next((r.users for r in self.reactions if r.name == emoji), [])

    def full_text(self) -> str:
        """The current text (exports and the API both carry the edited text), with attached files named."""
        names = [f.name or f.title or "file" for f in self.files]
        if not names:
            return self.text
        label = ("File: " if len(names) == 1 else "Files: ") + ", ".join(names)
        return f"{self.text} ({label[0].lower()}{label[1:]})" if self.text.strip() else label


class TextValue(SlackModel):
    value: str = ""


class ChannelInfo(SlackModel):
    id: str
    name: str
    created: int = 0
    creator: str | None = None
    topic: TextValue | None = None
    purpose: TextValue | None = None

    @property
    def title(self) -> str:
        """The incident's title: the purpose, else the topic (as people typed them), else the channel's name."""
        for text in (self.purpose, self.topic):
            if text is not None and text.value.strip():
                return unescape(text.value.strip())
        return self.name


class SlackUser(SlackModel):
    id: str
    name: str | None = None
    real_name: str | None = None
    profile: dict[str, Any] = Field(default_factory=dict)

    @property
    def display(self) -> str:
        return name_from_profile(self.model_dump()) or self.id


@dataclass(frozen=True)
class ChannelHistory:
    """Everything an import needs, read and validated before anything is written."""

    channel: ChannelInfo
    messages: list[SlackMessage]
    names: dict[str, str]

    def name_of(self, user_id: str) -> str:
        return self.names.get(user_id, user_id)
