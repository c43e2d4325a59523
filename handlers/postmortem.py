"""Publishing the post-mortem: `/inc postmortem` (summary, Markdown and picture), the channel canvas, and the
"Write the post-mortem" button offered when an incident is resolved."""

import logging
from collections.abc import Iterator, Mapping
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.errors import RewindError, UsageError
from bot.grammar import commands as grammar
from bot.grammar.slacktext import escape
from bot.manifest import with_slash_command
from bot.postmortem.build import build_postmortem
from bot.postmortem.model import PostMortem
from bot.postmortem.picture import render_png, render_svg
from bot.postmortem.render import format_duration, render_markdown
from bot.scribe.names import UserDirectory
from bot.services import Services
from handlers.blocks import Reply, button, section

log = logging.getLogger("rewind.postmortem")
WRITE_POSTMORTEM = "postmortem_write"
UPDATE_CANVAS = "postmortem_canvas_update"


class DirectoryNames(Mapping[str, str]):
    """The user directory as the read-only mapping the post-mortem builder takes; names are looked up on demand."""

    def __init__(self, directory: UserDirectory) -> None:
        self._directory = directory

    def __getitem__(self, user_id: str) -> str:
        return self._directory.name(user_id)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def build_document(services: Services, channel_id: str) -> PostMortem:
    incident = services.incidents.get(channel_id)
    return build_postmortem(
        services.store, incident.id, names=DirectoryNames(services.names), zone=services.settings.zone
    )


def summary_text(pm: PostMortem) -> str:
    header = pm.header
    lines = [
        f":page_facing_up: *Post-mortem: {escape(header.title)}*",
        f"{len(pm.timeline)} timeline entries · {len(pm.open_questions)} open questions · "
        f"{len(pm.action_items)} action items · {len(pm.restore_operations)} restore operations",
    ]
    if header.duration_s is not None:
        lines.append(f"Duration: {format_duration(header.duration_s)}")
    return "\n".join(lines)


def publish(services: Services, client: WebClient, channel_id: str) -> None:
    """Post the summary, then upload the Markdown and the picture (PNG when a renderer exists, else SVG)."""
    pm = build_document(services, channel_id)
    client.chat_postMessage(channel=channel_id, text=summary_text(pm))
    svg = render_svg(pm)
    png = render_png(svg)
    slug = pm.header.channel_name.lstrip("#") or channel_id
    picture = (
        {"content": png, "filename": f"{slug}-timeline.png", "title": "Incident timeline"}
        if png
        else {"content": svg, "filename": f"{slug}-timeline.svg", "title": "Incident timeline"}
    )
    client.files_upload_v2(
        channel=channel_id,
        file_uploads=[
            {
                "content": with_slash_command(render_markdown(pm), services.settings.slash_command),
                "filename": f"{slug}-postmortem.md",
                "title": "Post-mortem",
            },
            picture,
        ],
    )


def write_canvas(services: Services, client: WebClient, channel_id: str, *, update: bool) -> Reply:
    markdown = render_markdown(build_document(services, channel_id))
    content = {"type": "markdown", "markdown": markdown}
    if update:
        canvas_id = _channel_canvas(client, channel_id)
        if canvas_id is None:
            raise UsageError("This channel has no canvas yet.", "/inc postmortem canvas")
        client.canvases_edit(canvas_id=canvas_id, changes=[{"operation": "replace", "document_content": content}])
        return Reply(":memo: The channel canvas now holds the latest post-mortem.", public=True)
    try:
        client.conversations_canvases_create(channel_id=channel_id, document_content=content)
    except SlackApiError as exc:
        if exc.response.get("error") != "channel_canvas_already_exists":
            raise
        text = "This channel already has a canvas. Replace its content with the latest post-mortem?"
        return Reply(
            text + " (or type `/inc postmortem canvas update`)",
            [section(text), button("Update the canvas", UPDATE_CANVAS, channel_id)],
        )
    return Reply(":memo: The post-mortem is in the channel canvas.", public=True)


def _channel_canvas(client: WebClient, channel_id: str) -> str | None:
    info = client.conversations_info(channel=channel_id).get("channel") or {}
    return ((info.get("properties") or {}).get("canvas") or {}).get("file_id")


def _on_command(services: Services, client: WebClient, inv: Any, cmd: grammar.Postmortem) -> Reply:
    services.incidents.get(inv.channel_id)  # outside an incident: the usual explanation, before any work
    if cmd.canvas:
        return write_canvas(services, client, inv.channel_id, update=cmd.update)
    return Reply(
        ":hourglass_flowing_sand: Writing the post-mortem…",
        followup=lambda: publish(services, client, inv.channel_id),
    )


HANDLERS = {grammar.Postmortem: _on_command}


def register(app: App, services: Services) -> None:
    @app.action(WRITE_POSTMORTEM)
    def on_write(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        _run_action(services, client, body, lambda channel: publish(services, client, channel))

    @app.action(UPDATE_CANVAS)
    def on_update_canvas(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()

        def update(channel: str) -> None:
            reply = write_canvas(services, client, channel, update=True)
            client.chat_postMessage(channel=channel, **reply.payload())

        _run_action(services, client, body, update)


def _run_action(services: Services, client: WebClient, body: dict[str, Any], work: Any) -> None:
    channel = body["actions"][0].get("value") or body["channel"]["id"]
    try:
        work(channel)
    except (RewindError, SlackApiError) as exc:
        log.warning("post-mortem action failed: %s", exc)
        client.chat_postEphemeral(channel=channel, user=body["user"]["id"], text=f":warning: {exc}")
