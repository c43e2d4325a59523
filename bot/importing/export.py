"""A Slack workspace export (a zip): one channel read and validated whole, before anything is written."""

import io
import json
import zipfile
from pathlib import Path, PurePosixPath
from typing import TypeVar

from pydantic import ValidationError

from bot.errors import RewindError
from bot.importing.messages import ChannelHistory, ChannelInfo, SlackMessage, SlackModel, SlackUser

M = TypeVar("M", bound=SlackModel)


class MalformedExportError(RewindError):
    """A Slack export that cannot be read; the message names the file and what is wrong with it."""


def read_slack_export(path: Path, channel: str) -> ChannelHistory:
    """Read and validate one channel of a standard Slack export (a zip). Nothing is written here."""
    try:
        archive = zipfile.ZipFile(path)
    except FileNotFoundError as exc:
        raise MalformedExportError(f"{path}: no such file. Give the path of the export's .zip.") from exc
    except (zipfile.BadZipFile, OSError) as exc:
        raise MalformedExportError(f"{path}: not a zip file ({exc}). Give Slack's export .zip as downloaded.") from exc
    with archive:
        return _read_archive(path, archive, channel.lstrip("#"))


def _read_archive(path: Path, archive: zipfile.ZipFile, wanted: str) -> ChannelHistory:
    names = set(archive.namelist())
    root = _export_root(path, names)
    channels: list[ChannelInfo] = []
    for listing in ("channels.json", "groups.json"):
        if root + listing in names:
            channels += _load_list(path, archive, root + listing, ChannelInfo)
    channel = next((c for c in channels if wanted in (c.name, c.id)), None)
    if channel is None:
        known = ", ".join(sorted(c.name for c in channels)) or "none"
        raise MalformedExportError(
            f"{path}: no channel {wanted!r} in channels.json or groups.json (channels in this export: {known})."
        )
    users: list[SlackUser] = []
    if root + "users.json" in names:
        users = _load_list(path, archive, root + "users.json", SlackUser)
    folder = f"{root}{channel.name}/"
    days = sorted(n for n in names if n.startswith(folder) and n.endswith(".json") and "/" not in n[len(folder) :])
    if not days and not any(n.startswith(folder) for n in names):
        raise MalformedExportError(
            f"{path}: channel {channel.name!r} is listed but its folder {channel.name}/ is missing from the export."
        )
    messages: list[SlackMessage] = []
    for day in days:  # daily files sort by date; messages are ordered by ts afterwards, across midnight
        messages += _load_list(path, archive, day, SlackMessage, skip_non_messages=True)
    return ChannelHistory(channel, messages, {u.id: u.display for u in users})


def _export_root(path: Path, names: set[str]) -> str:
    """Exports have their JSON at the top; tolerate one enclosing folder (a re-zipped export)."""
    for listing in ("channels.json", "groups.json"):
        for name in sorted(names, key=len):
            if PurePosixPath(name).name == listing and name.count("/") <= 1:
                return name[: -len(listing)]
    raise MalformedExportError(
        f"{path}: neither channels.json nor groups.json is in the zip. Is this a Slack workspace export?"
    )


def _load_list(
    path: Path, archive: zipfile.ZipFile, name: str, model: type[M], *, skip_non_messages: bool = False
) -> list[M]:
    try:
        with archive.open(name) as handle:
            raw = json.load(io.TextIOWrapper(handle, encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise MalformedExportError(f"{path}: {name} is not valid JSON: {exc.msg} at line {exc.lineno}.") from exc
    except (UnicodeDecodeError, zipfile.BadZipFile, OSError) as exc:
        raise MalformedExportError(f"{path}: {name} cannot be read: {exc}.") from exc
    if not isinstance(raw, list):
        raise MalformedExportError(f"{path}: {name} should hold a JSON list, not {type(raw).__name__}.")
    items: list[M] = []
    for index, item in enumerate(raw):
        if skip_non_messages and isinstance(item, dict) and item.get("type", "message") != "message":
            continue
        try:
            items.append(model.model_validate(item))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "item"
            raise MalformedExportError(f"{path}: {name}, item {index + 1}: {where}: {first['msg']}.") from exc
    return items
