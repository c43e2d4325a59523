"""The slash command: parse the text, call a service, render the reply.

The store is written before `ack()` (invariant 7): a success the user sees is already recorded. Parse
errors and service refusals get an ephemeral reply with a correct example, and nothing is written.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from slack_bolt import Ack, App, Say
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.errors import RewindError, UsageError
from bot.grammar import commands as grammar
from bot.grammar.slacktext import escape
from bot.importing.receipts import receipt_metadata
from bot.scribe.incidents import channel_name_for, is_incident_channel_name
from bot.services import Services
from bot.store.models import EntryKind, IncidentStatus, TaskKind
from bot.store.types import utcnow
from handlers import blocks, postmortem
from handlers import history as history_handlers
from handlers import journal as journal_handlers
from handlers import restore as restore_handlers
from handlers.blocks import Reply

log = logging.getLogger("rewind.commands")


@dataclass(frozen=True)
class Invocation:
    """Who typed the command, where, and when."""

    user_id: str
    user_name: str | None
    channel_id: str
    channel_name: str | None
    now: datetime


def register(app: App, services: Services) -> None:
    slash = services.settings.slash_command

    @app.command(slash)
    def on_command(ack: Ack, command: dict[str, Any], client: WebClient, say: Say) -> None:
        inv = Invocation(
            user_id=command["user_id"],
            user_name=_display_name(services, command),
            channel_id=command["channel_id"],
            channel_name=command.get("channel_name"),
            now=utcnow(),
        )
        try:
            parsed = grammar.parse_command(
                command.get("text", ""), now=inv.now, zone=services.settings.zone, slash=slash
            )
            reply = dispatch(services, client, inv, parsed)
        except RewindError as exc:
            ack(**blocks.error(exc, slash).payload(slash))
            return
        if reply.public:
            ack()
            say(channel=inv.channel_id, metadata=receipt_metadata(parsed), **reply.payload(slash))
        else:
            ack(**reply.payload(slash))
        if reply.followup:
            _run_followup(reply.followup, client, inv)
        services.names.name(inv.user_id)  # after the ack: learn the real name for this user's next entries


def _run_followup(work: Callable[[], None], client: WebClient, inv: Invocation) -> None:
    """Slow work after the ack; a failure is told to the person who asked, never swallowed."""
    try:
        work()
    except (RewindError, SlackApiError) as exc:
        log.warning("follow-up of a command failed: %s", exc)
        client.chat_postEphemeral(channel=inv.channel_id, user=inv.user_id, text=f":warning: {exc}")


def _display_name(services: Services, command: dict[str, Any]) -> str | None:
    """The real name if already known, else the command's handle: no users.info call before the ack."""
    return services.names.known(command["user_id"]) or command.get("user_name")


Handler = Callable[[Services, WebClient, Invocation, Any], Reply]


def dispatch(services: Services, client: WebClient, inv: Invocation, parsed: grammar.AnyCommand) -> Reply:
    handler = _HANDLERS.get(type(parsed))
    if handler is None:
        raise UsageError(f"`{parsed.name}` is not available in this version.", "/inc help")
    return handler(services, client, inv, parsed)


def _declare(services: Services, client: WebClient, inv: Invocation, cmd: grammar.Declare) -> Reply:
    zone = services.settings.zone
    if cmd.here or is_incident_channel_name(inv.channel_name):
        incident = services.incidents.declare(
            title=cmd.title,
            user_id=inv.user_id,
            channel_id=inv.channel_id,
            channel_name=inv.channel_name or inv.channel_id,
            author_name=inv.user_name,
        )
        channel_id = inv.channel_id
    else:
        channel_id, name = _create_channel(client, channel_name_for(cmd.title, inv.now.astimezone(zone)))
        incident = services.incidents.declare(
            title=cmd.title, user_id=inv.user_id, channel_id=channel_id, channel_name=name, author_name=inv.user_name
        )
        _invite(client, channel_id, inv.user_id)
    header = blocks.declared(incident, zone)
    posted = client.chat_postMessage(channel=channel_id, metadata=receipt_metadata(), **header.payload())
    services.incidents.set_header(channel_id, posted["ts"])
    return Reply(f"Incident declared in <#{channel_id}>: {escape(incident.title)}")


def _create_channel(client: WebClient, name: str) -> tuple[str, str]:
    """conversations.create, with -2, -3… when the name is taken (two incidents on one day with one title)."""
    for attempt in range(1, 20):
        candidate = name if attempt == 1 else f"{name[:76]}-{attempt}"
        try:
            created = client.conversations_create(name=candidate)
        except SlackApiError as exc:
            if exc.response.get("error") == "name_taken":
                continue
            raise UsageError(f"Slack refused to create #{candidate}: {exc.response.get('error')}.") from exc
        return created["channel"]["id"], created["channel"]["name"]
    raise UsageError(f"Every channel name like #{name} is taken; declare with `--here` in a channel you made.")


def _invite(client: WebClient, channel_id: str, user_id: str) -> None:
    try:
        client.conversations_invite(channel=channel_id, users=user_id)
    except SlackApiError as exc:  # already in the channel, or the creator: the incident is declared either way
        log.info("invite to %s skipped: %s", channel_id, exc.response.get("error"))


def _note(services: Services, client: WebClient, inv: Invocation, cmd: grammar.Note) -> Reply:
    entry = services.timeline.add(
        inv.channel_id,
        EntryKind.NOTE,
        cmd.text,
        inv.user_id,
        at=cmd.at,
        approximate=cmd.approximate,
        author_name=inv.user_name,
    )
    return blocks.noted(entry, services.settings.zone)


def _flag(services: Services, client: WebClient, inv: Invocation, cmd: grammar.FlagRaise) -> Reply:
    flag = services.timeline.raise_flag(
        inv.channel_id, cmd.text, inv.user_id, at=cmd.at, approximate=cmd.approximate, author_name=inv.user_name
    )
    return blocks.flag_raised(flag, cmd.text)


def _flag_resolve(services: Services, client: WebClient, inv: Invocation, cmd: grammar.FlagResolve) -> Reply:
    flag = services.timeline.resolve_flag(
        inv.channel_id, cmd.number, cmd.resolution, inv.user_id, author_name=inv.user_name
    )
    return blocks.flag_resolved(flag)


def _listing(services: Services, client: WebClient, inv: Invocation, cmd: grammar.Listing) -> Reply:
    zone, slash = services.settings.zone, services.settings.slash_command
    if cmd.name == "help":
        return blocks.help_text(slash)
    if cmd.name == "flags":
        return blocks.flags(services.timeline.flags(inv.channel_id))
    if cmd.name == "actions":
        return blocks.tasks(services.runofshow.tasks(inv.channel_id))
    if cmd.name == "timeline":
        return blocks.timeline(services.timeline.recent(inv.channel_id, cmd.limit), zone)
    return blocks.status(services.incidents.summary(inv.channel_id), zone)


def _plan(services: Services, client: WebClient, inv: Invocation, cmd: grammar.Plan) -> Reply:
    return blocks.plan_set(services.runofshow.set_plan(inv.channel_id, cmd.steps, inv.user_id, inv.user_name))


def _step(services: Services, client: WebClient, inv: Invocation, cmd: grammar.StepUpdate) -> Reply:
    step = services.runofshow.update_step(
        inv.channel_id, cmd.number, cmd.action, inv.user_id, owner=cmd.owner, author_name=inv.user_name
    )
    return blocks.step_updated(step)


def _task(services: Services, client: WebClient, inv: Invocation, cmd: grammar.TaskCreate) -> Reply:
    kind = TaskKind.ASSIGNMENT if cmd.name == "assign" else TaskKind.ACTION
    task = services.runofshow.create_task(inv.channel_id, kind, cmd.owner, cmd.text, inv.user_id, inv.user_name)
    return blocks.task_created(task)


def _status_change(services: Services, client: WebClient, inv: Invocation, cmd: grammar.StatusChange) -> Reply:
    status = IncidentStatus.RESOLVED if cmd.name == "resolve" else IncidentStatus.CLOSED
    incident = services.incidents.change_status(inv.channel_id, status, inv.user_id, inv.user_name)
    return blocks.status_changed(incident, services.settings.slash_command, postmortem.WRITE_POSTMORTEM)


def _section(services: Services, client: WebClient, inv: Invocation, cmd: grammar.SectionText) -> Reply:
    entry = services.timeline.add(inv.channel_id, EntryKind(cmd.name), cmd.text, inv.user_id, author_name=inv.user_name)
    return blocks.recorded(cmd.name, entry.text)


_HANDLERS: dict[type, Handler] = {
    grammar.Declare: _declare,
    grammar.Note: _note,
    grammar.FlagRaise: _flag,
    grammar.FlagResolve: _flag_resolve,
    grammar.Listing: _listing,
    grammar.Plan: _plan,
    grammar.StepUpdate: _step,
    grammar.TaskCreate: _task,
    grammar.StatusChange: _status_change,
    grammar.SectionText: _section,
    **restore_handlers.HANDLERS,
    **journal_handlers.HANDLERS,
    **history_handlers.HANDLERS,
    **postmortem.HANDLERS,
}
