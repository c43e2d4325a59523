"""Slash command handlers for restore work (queries, diffs, plans, proposals); merged into handlers.commands.

Each handler asks `services.jobs`, which checks at once what can be checked (the parser's read-only verdict, the
target and its role, the incident, which backup and live targets apply) and runs the rest in the background. A
refusal comes back as an ephemeral error; results arrive in the channel through `SlackNotifier`
(handlers/restore_views.py): a progress message updated in a thread, the proposal message.
"""

from collections.abc import Callable
from typing import Any

from slack_bolt import App
from slack_sdk import WebClient

from bot.grammar import restore as grammar
from bot.services import Services
from handlers.blocks import Reply
from handlers.restore_views import SlackNotifier
from restore.targets import TargetRole

Handler = Callable[[Services, WebClient, Any, Any], Reply]

_ROLE_NOTES = {
    TargetRole.PRODUCTION: "written only through approved proposals",
    TargetRole.REPLICA: "read-only: `/inc query`",
    TargetRole.BACKUP: "read-only: `/inc query`",
}


def register(app: App, services: Services) -> None:
    """Restore jobs speak in the channel through the app's Web API client."""
    services.jobs.bind(SlackNotifier(app.client))


def _query(services: Services, client: WebClient, inv: Any, cmd: grammar.Query) -> Reply:
    target = services.jobs.targets.query_target(cmd.target)
    services.jobs.query(inv.channel_id, inv.user_id, target, cmd.sql)
    return Reply(f":mag: Running on {target.name} ({target.role.value}), read-only…")


def _targets(services: Services, client: WebClient, inv: Any, cmd: grammar.Targets) -> Reply:
    targets = services.jobs.targets.listed()
    if not targets:
        return Reply('No targets are configured. Set REWIND_TARGETS to {"name": {"dsn": "…", "role": "replica"}}.')
    lines = [f"• `{t.name}` — {t.role.value} ({_ROLE_NOTES[t.role]})" for t in targets]
    backups = ", ".join(f"`{name}`" for name in sorted(services.settings.backups))
    if backups:
        lines.append(f"Backups for `/inc replica up`: {backups}")
    return Reply("Targets:\n" + "\n".join(lines), followup=lambda: _warn_writable(services, client, inv))


def _warn_writable(services: Services, client: WebClient, inv: Any) -> None:
    """After the ack: asking each server what its login may do takes longer than Slack waits for one."""
    for warning in services.jobs.targets.write_warnings():
        client.chat_postEphemeral(channel=inv.channel_id, user=inv.user_id, text=f":warning: {warning}")


def _replica_up(services: Services, client: WebClient, inv: Any, cmd: grammar.ReplicaUp) -> Reply:
    if cmd.source:
        services.jobs.replica_from(inv.channel_id, inv.user_id, cmd.source, cmd.tables)
        return Reply(
            f":hourglass_flowing_sand: Copying {cmd.source} into a replica (read only there); progress follows."
        )
    services.jobs.replica_up(inv.channel_id, inv.user_id, str(cmd.backup), cmd.tables)
    return Reply(f":hourglass_flowing_sand: Provisioning a replica from {cmd.backup}; progress in the channel.")


def _backup_verify(services: Services, client: WebClient, inv: Any, cmd: grammar.BackupVerify) -> Reply:
    services.jobs.backup_verify(inv.channel_id, inv.user_id, cmd.backup)
    return Reply(f":hourglass_flowing_sand: Checking backup {cmd.backup} against live; findings become yellow flags.")


def _diff(services: Services, client: WebClient, inv: Any, cmd: grammar.Diff) -> Reply:
    services.jobs.diff(inv.channel_id, inv.user_id, cmd.table, cmd.where)
    return Reply(f":hourglass_flowing_sand: Comparing {cmd.table}; progress in the channel.")


def _deleted(services: Services, client: WebClient, inv: Any, cmd: grammar.Deleted) -> Reply:
    jobs = services.jobs
    if cmd.name == "deps":
        jobs.deps(inv.channel_id, inv.user_id, cmd.table, cmd.where)
    elif cmd.name == "gap":
        jobs.gap(inv.channel_id, inv.user_id, cmd.table, cmd.where)
    else:
        where = f" where {cmd.where}" if cmd.where else ""
        command = f"{services.settings.slash_command} plan {cmd.table} deleted{where}"
        jobs.plan(
            inv.channel_id,
            inv.user_id,
            inv.user_name,
            cmd.table,
            cmd.where,
            cmd.with_dependents,
            cmd.revert,
            command,
        )
    return Reply(f":hourglass_flowing_sand: Working on {cmd.table}; progress in the channel.")


def _propose(services: Services, client: WebClient, inv: Any, cmd: grammar.Propose) -> Reply:
    services.jobs.proposals.propose(inv.channel_id, inv.user_id, inv.user_name, cmd.target, cmd.sql)
    return Reply(f":hourglass_flowing_sand: Dry-running your SQL on {cmd.target} (rolled back); the proposal follows.")


HANDLERS: dict[type, Handler] = {
    grammar.Query: _query,
    grammar.Targets: _targets,
    grammar.ReplicaUp: _replica_up,
    grammar.BackupVerify: _backup_verify,
    grammar.Diff: _diff,
    grammar.Deleted: _deleted,
    grammar.Propose: _propose,
}
