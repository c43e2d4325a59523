"""Settings from the environment and `.env` (pydantic-settings). A bad value fails start-up in one line."""

import json
import tomllib
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.errors import ConfigError, RewindError
from bot.journal.sizes import parse_size
from bot.manifest import SLASH_COMMAND
from restore.targets import Target, TargetRole

SLACK_API_URL = "https://slack.com/api/"


class RunMode(StrEnum):
    SOCKET = "socket"
    HTTP = "http"
    SHELL = "shell"


class Settings(BaseSettings):
    """Every knob of a Rewind process. Environment names are in the README's configuration table."""

    model_config = SettingsConfigDict(env_prefix="REWIND_", env_file=".env", extra="ignore")

    slack_bot_token: str | None = Field(None, validation_alias=AliasChoices("SLACK_BOT_TOKEN"))
    slack_signing_secret: str | None = Field(None, validation_alias=AliasChoices("SLACK_SIGNING_SECRET"))
    slack_app_token: str | None = Field(None, validation_alias=AliasChoices("SLACK_APP_TOKEN"))

    database_url: str = "sqlite:///rewind.db"
    slack_api_url: str = SLACK_API_URL
    http_port: int = Field(3000, ge=1, le=65535)
    slash_command: str = SLASH_COMMAND
    timezone: str = "UTC"

    emoji_note: str = "pushpin"
    emoji_flag: str = "large_yellow_circle"
    emoji_approve: str = "white_check_mark"
    emoji_reject: str = "x"
    emoji_confirm: str = "memo"

    nudge_after_minutes: int = Field(30, ge=1)
    approvals_required: int = Field(2, ge=1)
    approvers: Annotated[list[str], NoDecode] = Field(default_factory=list)
    approver_group: str | None = None  # a Slack user group id (S…); its members may approve too
    proposal_ttl_minutes: int = Field(30, ge=1)

    targets: Annotated[dict[str, Target], NoDecode] = Field(default_factory=dict)
    targets_file: Path | None = None

    # Restore work from Slack: dumps by name, where replicas are provisioned, which targets are compared.
    backups: Annotated[dict[str, Path], NoDecode] = Field(default_factory=dict)  # name -> dump file or directory
    replica_server_dsn: str | None = None  # scratch databases for `/inc replica up`; unset: a private cluster
    live_target: str | None = None  # the production target; unset: the only production target configured
    backup_target: str | None = None  # compared against when no replica was provisioned in the incident
    live_replica_target: str | None = None  # a replica of production: diffs with a `where` read live there
    query_max_rows: int = Field(20, ge=1, le=100)  # rows shown inline by `/inc query`; more go to a CSV file
    # `rewind mcp`: the incident channel (id) an agent works in; unset: the only open incident in the store
    agent_channel: str | None = None

    exec_channel: str | None = None  # `rewind exec --request` asks here; unset: the open incident declared last
    exec_requester: str | None = None  # the Slack user id of whoever runs `rewind exec --request` here
    exec_wait_seconds: int | None = Field(None, ge=1)  # how long it waits for approvals; unset: the proposal's TTL

    journal_sync_seconds: int = Field(60, ge=0)  # how often `rewind run` syncs every journal; 0: never
    journal_wal_limit: str = "1GB"  # retained WAL on production above which the bot warns
    journal_alert_channel: str | None = None  # where that warning goes (a channel id); unset: the log only

    shell_files_dir: Path = Path("rewind-files")  # shell mode saves what the bot uploads (post-mortems, CSVs) here

    @field_validator("slash_command")
    @classmethod
    def _slash(cls, value: str) -> str:
        if not value.startswith("/") or " " in value or len(value) < 2:
            raise ValueError("must look like /inc")
        return value

    @field_validator("journal_wal_limit")
    @classmethod
    def _wal_limit(cls, value: str) -> str:
        try:
            parse_size(value)
        except RewindError as exc:
            raise ValueError(str(exc)) from exc
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r} (try UTC or Europe/Paris)") from exc
        return value

    @field_validator("slack_api_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL such as https://slack.com/api/")
        return value if value.endswith("/") else value + "/"

    @field_validator("approvers", mode="before")
    @classmethod
    def _approvers(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("backups", mode="before")
    @classmethod
    def _backups(cls, value: Any) -> Any:
        if isinstance(value, str):
            return json.loads(value) if value.strip() else {}
        return value

    @field_validator("targets", mode="before")
    @classmethod
    def _targets(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = json.loads(value) if value.strip() else {}
        return _name_targets(value)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def mode(self) -> RunMode:
        if self.slack_app_token and self.slack_bot_token:
            return RunMode.SOCKET
        if self.slack_bot_token and self.slack_signing_secret:
            return RunMode.HTTP
        return RunMode.SHELL

    def all_targets(self) -> dict[str, Target]:
        """Targets from REWIND_TARGETS merged with REWIND_TARGETS_FILE (TOML or JSON)."""
        merged = dict(self.targets)
        if self.targets_file:
            merged.update(load_targets_file(self.targets_file))
        return merged


def _name_targets(raw: Any) -> dict[str, Any]:
    """Accept {"name": {"dsn": ..., "role": ...}} and fill in each target's name."""
    if not isinstance(raw, dict):
        raise ValueError('must be a JSON object like {"prod": {"dsn": "postgresql://...", "role": "production"}}')
    named: dict[str, Any] = {}
    for name, spec in raw.items():
        if isinstance(spec, Target):
            named[name] = spec
        elif isinstance(spec, dict):
            named[name] = {**spec, "name": name}
        else:
            raise ValueError(f"target {name!r} must be an object with dsn and role")
    return named


def load_targets_file(path: Path) -> dict[str, Target]:
    try:
        text = path.read_text()
        raw = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"REWIND_TARGETS_FILE {path}: {exc}") from exc
    raw = raw.get("targets", raw)
    try:
        return {name: Target.model_validate(spec) for name, spec in _name_targets(raw).items()}
    except (ValueError, ValidationError) as exc:
        raise ConfigError(f"REWIND_TARGETS_FILE {path}: {exc}") from exc


_ENV_NAMES = {
    "slack_bot_token": "SLACK_BOT_TOKEN",
    "slack_signing_secret": "SLACK_SIGNING_SECRET",
    "slack_app_token": "SLACK_APP_TOKEN",
}


def env_name(field: str) -> str:
    return _ENV_NAMES.get(field, f"REWIND_{field.upper()}")


def load_settings(**overrides: Any) -> Settings:
    """Settings, or a ConfigError whose one line names the offending variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "?"
        raise ConfigError(f"Invalid {env_name(field)}: {first['msg']}") from None


__all__ = ["RunMode", "Settings", "TargetRole", "load_settings"]
