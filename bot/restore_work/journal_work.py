"""The change journal from the channel: its status, its transactions, and undo of chosen ones as a proposal.

Each job syncs the journal first, so what it reads includes the last minutes; then it reports through the progress
thread in plain values, records its figures on the timeline, and (for undo) posts the script as a proposal with its
dry run, which runs only once enough people approve it, like any other.
"""

from collections.abc import Sequence
from concurrent.futures import Future
from datetime import datetime

from bot.approvals.service import ProposalService
from bot.config import Settings
from bot.errors import UsageError
from bot.journal.service import LogTransaction, journal_log, journal_names, journal_status, sync_journal
from bot.journal.undo import UndoResult, plan_journal_undo
from bot.restore_work.background import Background, Progress
from bot.restore_work.proposals import ProposalFlow
from bot.restore_work.targets import RestoreTargets
from bot.scribe.incidents import require_incident
from bot.scribe.timeline import TimelineService
from bot.store.models import EntryKind, EntrySource
from bot.store.session import Store
from restore.errors import RewindError
from restore.query import human_size

RECENT_TRANSACTIONS = 10
LOG_LINES = 40


class JournalWork:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        targets: RestoreTargets,
        background: Background,
        proposals: ProposalFlow,
        approvals: ProposalService,
        timeline: TimelineService,
    ) -> None:
        self.settings, self.store, self.targets = settings, store, targets
        self.background, self.proposals, self.approvals, self.timeline = background, proposals, approvals, timeline

    def journal_name(self) -> str:
        """The journal of the live database: the only one, else the one named after the live target."""
        names = journal_names(self.store)
        if len(names) == 1:
            return names[0]
        live = self.targets.live().name
        if live in names:
            return live
        known = ", ".join(names) or "none"
        raise UsageError(
            f"No journal records {live}'s changes (journals: {known}). Start one with "
            f"`rewind journal start --target {live}`."
        )

    # --- checked now, run in the background -----------------------------------------------------------------------

    def status(self, channel: str, user: str) -> Future[None]:
        self._in_incident(channel)
        return self.background.submit(self._status, channel, user, self.journal_name())

    def log(
        self, channel: str, user: str, since: datetime | None, until: datetime | None, tables: Sequence[str]
    ) -> Future[None]:
        self._in_incident(channel)
        return self.background.submit(self._log, channel, user, self.journal_name(), since, until, list(tables))

    def undo(
        self,
        channel: str,
        user: str,
        user_name: str | None,
        *,
        xids: Sequence[int] = (),
        since: datetime | None = None,
        until: datetime | None = None,
        tables: Sequence[str] = (),
        command: str = "",
    ) -> Future[None]:
        self._in_incident(channel)
        if not xids and not (since and until):
            raise UsageError(
                "Say which transactions: their ids, or `since … until …`.", "/inc undo since 04:10 until 04:17"
            )
        name = self.journal_name()
        return self.background.submit(
            self._undo, channel, user, user_name, name, list(xids), since, until, list(tables), command
        )

    # --- job bodies ---------------------------------------------------------------------------------------------------

    def _status(self, channel: str, user: str, name: str) -> None:
        progress = self.background.progress(channel, user, f"Journal {name}")
        try:
            self._sync(progress, name)
            status = journal_status(self.store, self.settings.all_targets(), name)
            recent = journal_log(self.store, name, limit=RECENT_TRANSACTIONS).transactions
        except RewindError as exc:
            progress.failed(str(exc))
            return
        slot = status.slot
        lines = [
            f"{'running' if status.running else 'stopped'}; {status.transactions:,} transactions, "
            f"{status.changes:,} row changes stored",
            f"retained WAL on production: {human_size(slot.retained_wal_bytes) if slot and slot.exists else 'no slot'}",
            f"last sync: {status.last_sync_at:%Y-%m-%d %H:%M:%S} UTC" if status.last_sync_at else "never synced",
            "recent transactions:" if recent else "no transactions yet",
            *(_transaction_line(t) for t in recent),
        ]
        progress.done("\n".join(lines))

    def _log(
        self, channel: str, user: str, name: str, since: datetime | None, until: datetime | None, tables: list[str]
    ) -> None:
        progress = self.background.progress(channel, user, f"Journal {name}: transactions")
        try:
            self._sync(progress, name)
            transactions = journal_log(self.store, name, since=since, until=until, tables=tables).transactions
        except RewindError as exc:
            progress.failed(str(exc))
            return
        shown = transactions[-LOG_LINES:]
        more = len(transactions) - len(shown)
        lines = [f"{len(transactions):,} transactions" + (f"; the last {len(shown)} shown" if more else "")]
        progress.done("\n".join([*lines, *(_transaction_line(t) for t in shown)]))

    def _undo(
        self,
        channel: str,
        user: str,
        user_name: str | None,
        name: str,
        xids: list[int],
        since: datetime | None,
        until: datetime | None,
        tables: list[str],
        command: str,
    ) -> None:
        progress = self.background.progress(channel, user, f"Undo from journal {name}")
        try:
            self._sync(progress, name)
            progress.say("planning the inverse of those transactions…")
            undo = plan_journal_undo(
                self.store,
                self.settings.all_targets(),
                name,
                xids=xids,
                since=since,
                until=until,
                tables=tables,
                command=command,
            )
            result, plan = undo.result, undo.plan.plan
            if plan.empty:
                progress.done(f"nothing to undo: {'; '.join(result.notes) or 'no row changes left to reverse'}")
                return
            counts = {t: {op: n for op, n in c.items() if n} for t, c in result.counts.items()}
            figures = {
                "operation": "undo",
                "journal": name,
                "transactions": result.xids,
                "counts": counts,
                "conflicts": len(result.conflicts),
            }
            self._record(channel, user, f"Undo of {len(result.xids)} transaction(s) from journal {name}", figures)
            for line in _undo_lines(result):
                progress.say(line)
            progress.say("dry-running it on live (rolled back)…")
            live = self.targets.live().name
            proposed = self.approvals.propose(
                channel,
                live,
                plan.sql,
                user,
                proposer_name=user_name,
                kind="undo",
                summary=f"undo {len(result.xids)} transaction(s) ({', '.join(map(str, result.xids[:5]))}"
                + ("…" if len(result.xids) > 5 else "")
                + ")",
                plan={"journal": name, "transactions": result.xids, "conflicts": len(result.conflicts)},
            )
        except RewindError as exc:
            progress.failed(str(exc))
            return
        self.proposals.publish(proposed.proposal, proposed.superseded)
        progress.done(f"posted as proposal #{proposed.proposal.number} ({proposed.proposal.status})")

    # --- helpers ------------------------------------------------------------------------------------------------------

    def _in_incident(self, channel: str) -> None:
        with self.store.transaction() as session:
            require_incident(session, channel)

    def _sync(self, progress: Progress, name: str) -> None:
        synced = sync_journal(self.store, self.settings.all_targets(), name)
        if synced.synced and synced.stats is not None:
            progress.say(f"synced: {synced.stats.changes:,} new row changes")

    def _record(self, channel: str, user: str, text: str, figures: dict[str, object]) -> None:
        self.timeline.add(channel, EntryKind.RESTORE, text, user, data=figures, source=EntrySource.SYSTEM)


def _transaction_line(t: LogTransaction) -> str:
    tables = ", ".join(
        f"{table}: " + " ".join(f"{n} {op}" for op, n in ops.items() if n) for table, ops in t.tables.items()
    )
    truncated = f"; truncated {', '.join(t.truncated)}" if t.truncated else ""
    return f"xid {t.xid} at {t.commit_time:%Y-%m-%d %H:%M:%S} UTC — {tables}{truncated}"


def _undo_lines(result: UndoResult) -> list[str]:
    """Counts per table, then each conflict with both values: a row changed since is reported, never clobbered."""
    lines = [
        f"{table}: " + ", ".join(f"{n} {op}" for op, n in ops.items() if n) for table, ops in result.counts.items()
    ]
    for conflict in result.conflicts[:10]:
        lines.append(
            f"conflict in {conflict.table} {conflict.key}: {conflict.reason}; the undone transactions left "
            f"{conflict.expected}, live now holds {conflict.live} (left as it is)"
        )
    if len(result.conflicts) > 10:
        lines.append(f"… {len(result.conflicts) - 10} more conflicts")
    return [*lines, *result.notes]
