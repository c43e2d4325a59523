"""Slash command handlers for the change journal: `journal`, `journal log …`, `undo …`; merged into handlers.commands.

Each asks `services.jobs.journal`, which checks the incident and picks the journal at once, then syncs and reports in
the channel through the progress thread; an undo ends as a proposal that waits for approvals like any other.
"""

from collections.abc import Callable
from typing import Any

from slack_sdk import WebClient

from bot.grammar import journal as grammar
from bot.journal.service import WalAlert
from bot.services import Services
from handlers.blocks import Reply
from restore.query import human_size

Handler = Callable[[Services, WebClient, Any, Any], Reply]


def _status(services: Services, client: WebClient, inv: Any, cmd: grammar.JournalStatus) -> Reply:
    services.jobs.journal.status(inv.channel_id, inv.user_id)
    return Reply(":hourglass_flowing_sand: Reading the journal; its status follows in the channel.")


def _log(services: Services, client: WebClient, inv: Any, cmd: grammar.JournalLog) -> Reply:
    services.jobs.journal.log(inv.channel_id, inv.user_id, cmd.since, cmd.until, cmd.tables)
    return Reply(":hourglass_flowing_sand: Listing the journal's transactions in the channel.")


def _undo(services: Services, client: WebClient, inv: Any, cmd: grammar.Undo) -> Reply:
    typed = " ".join(map(str, cmd.xids)) or f"since {cmd.since:%Y-%m-%d %H:%M} until {cmd.until:%Y-%m-%d %H:%M} UTC"
    services.jobs.journal.undo(
        inv.channel_id,
        inv.user_id,
        inv.user_name,
        xids=cmd.xids,
        since=cmd.since,
        until=cmd.until,
        tables=cmd.tables,
        command=f"{services.settings.slash_command} undo {typed}",
    )
    return Reply(":hourglass_flowing_sand: Planning the undo from the journal; the proposal follows in the channel.")


HANDLERS: dict[type, Handler] = {
    grammar.JournalStatus: _status,
    grammar.JournalLog: _log,
    grammar.Undo: _undo,
}


def wal_warning(alert: WalAlert) -> str:
    """The warning the scheduler posts when a journal's slot keeps too much WAL on production."""
    if alert.slot_missing:
        return (
            f":rotating_light: Journal *{alert.journal}*: its replication slot is gone from production, so changes "
            "are no longer recorded. Start it again with `rewind journal start`, then check what was missed."
        )
    return (
        f":rotating_light: Journal *{alert.journal}* keeps {human_size(alert.retained_wal_bytes)} of WAL on "
        f"production (limit {human_size(alert.limit_bytes)}): production's disk fills until it is read. Is "
        "`rewind run` syncing it? `rewind journal sync` reads it now; `rewind journal stop` drops the slot if the "
        "journal is no longer wanted."
    )
