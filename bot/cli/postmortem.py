"""`rewind postmortem (--incident ID | --channel NAME) [--format md|json|html] [--out FILE] [--picture FILE]`.

Reads the state store only, so it works without Slack: names come from the entries' author_name, else the user id.
`bot.cli` adds it with `register(subparsers, settings_loader)`.
"""

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from bot.config import Settings
from bot.errors import UsageError
from bot.manifest import with_slash_command

if TYPE_CHECKING:
    from bot.postmortem.model import PostMortem

SettingsLoader = Callable[[], Settings]
FORMATS = ("html", "json", "md")  # bot.postmortem.render.RENDERERS, named here so `rewind --help` loads no store


def register(
    subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]", settings_loader: SettingsLoader
) -> None:
    parser = subparsers.add_parser("postmortem", help="write an incident's post-mortem from the state store")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--incident", type=int, metavar="ID", help="incident number")
    which.add_argument("--channel", metavar="NAME", help="incident channel name (#inc-…) or id")
    parser.add_argument("--format", choices=FORMATS, default="md", help="output format (default md)")
    parser.add_argument("--out", type=Path, metavar="FILE", help="write here instead of standard output")
    parser.add_argument("--picture", type=Path, metavar="FILE", help="also write the timeline chart (.svg or .png)")
    parser.set_defaults(func=lambda args: run(args, settings_loader()))


def run(args: argparse.Namespace, settings: Settings) -> int:
    from bot.postmortem.build import build_postmortem, find_incident_id
    from bot.postmortem.render import RENDERERS
    from bot.store import open_store

    store = open_store(settings.database_url)
    try:
        incident_id = args.incident if args.incident is not None else find_incident_id(store, args.channel)
        pm = build_postmortem(store, incident_id, names={}, zone=settings.zone)
    finally:
        store.dispose()
    document = with_slash_command(RENDERERS[args.format](pm), settings.slash_command)
    if args.out:
        args.out.write_text(document, encoding="utf-8")
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(document)
    if args.picture:
        write_picture(pm, args.picture)
    return 0


def write_picture(pm: "PostMortem", path: Path) -> None:
    from bot.postmortem.picture import render_png, render_svg

    svg = render_svg(pm)
    if path.suffix.lower() != ".png":
        path.write_text(svg, encoding="utf-8")
    else:
        png = render_png(svg)
        if png is None:
            raise UsageError("No PNG renderer: install cairosvg or rsvg-convert (librsvg2-bin), or write a .svg.")
        path.write_bytes(png)
    print(f"wrote {path}", file=sys.stderr)
