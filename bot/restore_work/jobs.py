"""Restore work from the channel: read-only queries, replicas, diffs, deps, gaps and plans.

Each public method checks at once what a caller can get wrong (the incident, the targets, the parser's verdict, the
rule that a `where` never runs on production) and raises a `RewindError` saying what to do. The slow part then runs
in the background (`background.py`), reports in the channel through the `Notifier` in plain values, and records its
figures as a `restore` timeline entry. The work itself is `reads.py`'s plain calls, which the agent interface uses
too; which databases are compared is `targets.py`'s rule; proposals, their execution and verification are
`proposals.py`'s.
"""

import logging
from collections.abc import Sequence
from concurrent.futures import Future
from datetime import datetime
from pathlib import Path
from typing import Any

from bot.approvals.service import ProposalService
from bot.approvals.views import ProposalView
from bot.config import Settings
from bot.journal.service import JournalCoverage, journal_coverage, journals_of, sync_journal
from bot.restore_work import reads
from bot.restore_work.background import Background, Progress
from bot.restore_work.journal_work import JournalWork
from bot.restore_work.notifier import Notifier, QueryAnswer
from bot.restore_work.proposals import ProposalFlow
from bot.restore_work.targets import RestoreTargets, Sides
from bot.scribe.incidents import require_incident
from bot.scribe.timeline import TimelineService
from bot.store.models import Entry, EntryKind, EntrySource
from bot.store.session import Store
from restore import replica as replicas
from restore.errors import RewindError
from restore.guard import require_read_only
from restore.query import run_read_only
from restore.replica import Replica
from restore.targets import Target, TargetRole, mask_dsn, require_role
from restore.verify import verify_backup, verify_dump

log = logging.getLogger("rewind.restore")

CSV_MAX_ROWS = 10_000
MAX_GAP_FLAGS = 25  # one yellow flag per row up to this; one more flag sums up the rest


class RestoreJobs:
    """The restore work one process shares: its targets, its background pool, its proposal flow, and the jobs."""

    def __init__(self, settings: Settings, store: Store, timeline: TimelineService, approvals: ProposalService) -> None:
        self.settings = settings
        self.store = store
        self.timeline = timeline
        self.approvals = approvals
        self.targets = RestoreTargets(settings, store)
        self.background = Background()
        self.proposals = ProposalFlow(store, approvals, self.targets, self.background)
        self.journal = JournalWork(settings, store, self.targets, self.background, self.proposals, approvals, timeline)

    # --- the process's entry points: wiring, the scheduler, start-up and shutdown ------------------------------------

    def bind(self, notifier: Notifier) -> None:
        self.background.bind(notifier)

    def run_due(self) -> None:
        self.proposals.run_due()

    def reconcile(self) -> list[ProposalView]:
        return self.proposals.reconcile()

    def shutdown(self) -> None:
        self.background.shutdown()

    def wait_idle(self) -> None:
        self.background.wait_idle()

    # --- jobs: checked now, run in the background ---------------------------------------------------------------

    def query(self, channel: str, user: str, target: Target, sql_text: str) -> Future[None]:
        """A read-only query on a replica or backup target: its role and the parser's verdict now, the READ ONLY run
        later."""
        require_role(target, TargetRole.REPLICA, TargetRole.BACKUP)
        require_read_only(sql_text)
        return self.background.submit(self._query, channel, user, target, sql_text)

    def replica_up(self, channel: str, user: str, backup: str, tables: Sequence[str]) -> Future[None]:
        with self.store.transaction() as session:
            require_incident(session, channel)
        dump = self.targets.backup_dump(backup)
        return self.background.submit(self._replica_up, channel, user, backup, dump, tables)

    def replica_from(self, channel: str, user: str, source: str, tables: Sequence[str]) -> Future[None]:
        """A replica copied straight from a live replica (or production) target: one snapshot, only read there."""
        with self.store.transaction() as session:
            require_incident(session, channel)
        target = self.targets.copy_source(source)
        return self.background.submit(self._replica_from, channel, user, target, tables)

    def backup_verify(self, channel: str, user: str, backup: str) -> Future[None]:
        """Is the backup any good: checked against live; each finding raises a yellow flag."""
        with self.store.transaction() as session:
            require_incident(session, channel)
        checked = self.targets.verifiable_backup(backup)
        return self.background.submit(self._backup_verify, channel, user, backup, checked, self.targets.live())

    def diff(self, channel: str, user: str, table: str, where: str | None) -> Future[None]:
        sides = reads.checked_sides(self.targets, channel, table, where, on_live=True)
        return self.background.submit(self._diff, channel, user, sides, table, where)

    def deps(self, channel: str, user: str, table: str, where: str | None) -> Future[None]:
        sides = reads.checked_sides(self.targets, channel, table, where, on_live=False)
        return self.background.submit(self._deps, channel, user, sides, table, where)

    def gap(self, channel: str, user: str, table: str, where: str | None) -> Future[None]:
        sides = reads.checked_sides(self.targets, channel, table, where, on_live=False)
        return self.background.submit(self._gap, channel, user, sides, table, where)

    def plan(
        self,
        channel: str,
        user: str,
        user_name: str | None,
        table: str,
        where: str | None,
        with_dependents: bool,
        revert: Sequence[str],
        command: str,
    ) -> Future[None]:
        """A restore plan for the deleted rows of `table`, posted as a proposal; `command` is recorded in its SQL."""
        sides = reads.checked_sides(self.targets, channel, table, where, on_live=False)
        return self.background.submit(
            self._plan, channel, user, user_name, sides, table, where, with_dependents, revert, command
        )

    # --- job bodies -----------------------------------------------------------------------------------------------

    def _query(self, channel: str, user: str, target: Target, sql_text: str) -> None:
        notifier = self.background.notify
        try:
            result = run_read_only(target, sql_text, limit=CSV_MAX_ROWS, timeout_s=10)
        except RewindError as exc:
            notifier.refused(channel, user, mask_dsn(str(exc)), target=target.name)
            return
        answer = QueryAnswer(target.name, target.role.value, sql_text, result, self.settings.query_max_rows)
        notifier.query_answered(channel, user, answer)

    def _replica_up(self, channel: str, user: str, backup: str, dump: Path, tables: Sequence[str]) -> None:
        progress = self.background.progress(channel, user, f"Provisioning a replica from backup {backup}")
        try:
            made = replicas.provision(
                dump, server_dsn=self.settings.replica_server_dsn, tables=tables, progress=progress.say
            )
        except RewindError as exc:
            progress.failed(str(exc))
            return
        self._provisioned(channel, user, progress, made, backup, f"backup {backup}")

    def _provisioned(
        self, channel: str, user: str, progress: Progress, made: Replica, backup: str, origin: str
    ) -> None:
        """The replica on the timeline, where `sides()` finds it as this incident's backup from now on."""
        when = made.backup_time.isoformat() if made.backup_time else None
        figures = {
            "operation": "replica up",
            "replica": made.name,
            "backup": backup,
            "tables": len(made.tables),
            "seconds": made.seconds,
            **({"backup_time": when} if when else {}),
        }
        summary = f"replica {made.name} ready: {len(made.tables)} tables in {made.seconds:.1f}s" + (
            f", backup taken {when}" if when else ""
        )
        skipped = [f"skipped: {item}" for item in made.skipped]
        self._record(channel, user, f"Replica {made.name} provisioned from {origin}", figures)
        progress.done("\n".join([summary, *skipped[:10]]))

    def _replica_from(self, channel: str, user: str, source: Target, tables: Sequence[str]) -> None:
        progress = self.background.progress(channel, user, f"Copying {source.name} into a replica")
        try:
            made = replicas.provision_from(
                source, server_dsn=self.settings.replica_server_dsn, tables=tables, progress=progress.say
            )
        except RewindError as exc:
            progress.failed(str(exc))
            return
        self._provisioned(channel, user, progress, made, f"live:{source.name}", f"{source.name} (copied live)")

    def _backup_verify(self, channel: str, user: str, name: str, backup: Target | Path, live: Target) -> None:
        progress = self.background.progress(
            channel, user, f"Is backup {name} any good? Checking it against {live.name}"
        )
        try:
            if isinstance(backup, Path):
                result = verify_dump(backup, live, server_dsn=self.settings.replica_server_dsn, progress=progress.say)
            else:
                result = verify_backup(backup, live)
        except RewindError as exc:
            progress.failed(str(exc))
            return
        for finding in result.findings[:MAX_GAP_FLAGS]:
            self.timeline.raise_flag(channel, f"Backup {name}: {finding}", user, data={"operation": "backup verify"})
        if len(result.findings) > MAX_GAP_FLAGS:
            more = len(result.findings) - MAX_GAP_FLAGS
            self.timeline.raise_flag(channel, f"Backup {name}: {more:,} more findings", user)
        when = result.backup_time.isoformat() if result.backup_time else None
        figures = {"operation": "backup verify", "backup": name, "findings": len(result.findings), "backup_time": when}
        self._record(channel, user, f"Backup {name} verified against {live.name}", figures)
        checked = sum(1 for table in result.tables if table.unchecked is None)
        summary = f"{len(result.findings)} finding(s) over {checked} table(s) compared" + (
            " (a yellow flag each)" if result.findings else "; nothing the backup should have and lacks"
        )
        progress.done("\n".join([summary, *result.findings[:10]]))

    def _diff(self, channel: str, user: str, sides: Sides, table: str, where: str | None) -> None:
        live = sides.live_read if where else sides.live
        progress = self.background.progress(channel, user, f"Diff of {table} ({sides.backup_label} vs {live.name})")
        try:
            result = reads.diff(sides, table, where)
        except RewindError as exc:
            progress.failed(str(exc))
            return
        counts = result.counts
        figures = {"operation": "diff", "table": result.table, "where": where, **counts}
        summary = ", ".join(f"{counts.get(k, 0):,} {k}" for k in ("deleted", "added", "changed"))
        self._record(channel, user, f"Diff of {result.table}: {summary}", figures)
        progress.done(summary)

    def _deps(self, channel: str, user: str, sides: Sides, table: str, where: str | None) -> None:
        progress = self.background.progress(channel, user, f"Rows that depend on the deleted {table}")
        try:
            progress.say("finding the deleted rows…")
            roots = reads.roots(sides, table, where)
            progress.say(f"{len(roots):,} deleted; following foreign keys…")
            counts = reads.deps(sides, table, roots).counts() if roots else {}
        except RewindError as exc:
            progress.failed(str(exc))
            return
        missing = sum(c.get("missing", 0) for c in counts.values())
        lines = [f"{name}: " + ", ".join(f"{n:,} {s}" for s, n in c.items() if n) for name, c in counts.items()]
        figures = {"operation": "deps", "table": table, "where": where, "deleted": len(roots), "missing": missing}
        summary = f"{len(roots):,} deleted rows, {missing:,} rows missing in all" + (
            "\n" + "\n".join(lines) if lines else ""
        )
        self._record(channel, user, f"Dependencies of the deleted {table}: {missing:,} rows missing", figures)
        progress.done(summary)

    def _gap(self, channel: str, user: str, sides: Sides, table: str, where: str | None) -> None:
        progress = self.background.progress(channel, user, f"What the backup cannot give back ({table})")
        try:
            roots = reads.roots(sides, table, where)
            result = reads.gap(sides, table, roots)
        except RewindError as exc:
            progress.failed(str(exc))
            return
        rows = result.created_after_backup
        for row in rows[:MAX_GAP_FLAGS]:
            text = (
                f"{row.table} row {_key(row.key)} was created at {row.created_at} (after the backup, "
                f"{result.backup_time:%Y-%m-%d %H:%M} UTC) and references {row.references.table} "
                f"{_key(row.references.key)}: the backup cannot give it back"
            )
            self.timeline.raise_flag(channel, text, user, data={"operation": "gap", **row.model_dump(mode="json")})
        if len(rows) > MAX_GAP_FLAGS:
            more = len(rows) - MAX_GAP_FLAGS
            self.timeline.raise_flag(channel, f"{more:,} more rows of {table}'s dependents postdate the backup", user)
        figures = {"operation": "gap", "table": table, "where": where, **result.counts}
        summary = (
            f"{len(rows):,} rows created after the backup reference the deleted rows"
            + (" (a yellow flag each)" if rows else "")
            + (
                f"; not checked (no created_at): {', '.join(result.unchecked_tables)}"
                if result.unchecked_tables
                else ""
            )
        )
        covered = self._journal_coverage(sides, result.backup_time, [(row.table, row.key) for row in rows])
        if covered:
            figures["journal_restorable"] = len(covered.restorable)
            xids = sorted({row.xid for row in covered.restorable})
            summary += (
                f"\njournal {covered.journal} can restore {len(covered.restorable):,} of them"
                + (f": undo transactions {', '.join(map(str, xids[:10]))}" if xids else "")
                + ("" if covered.covers_backup_time else " (it started after the backup, so it may miss some)")
            )
        self._record(channel, user, f"Gap for the deleted {table}: {len(rows):,} rows postdate the backup", figures)
        progress.done(summary)

    def _journal_coverage(
        self, sides: Sides, backup_time: datetime | None, rows: list[tuple[str, Sequence[Any]]]
    ) -> JournalCoverage | None:
        """Which of the rows the backup cannot give back a journal on live can: it holds their values before."""
        names = journals_of(self.store, sides.live.name)
        if not rows or backup_time is None or not names:
            return None
        try:
            sync_journal(self.store, self.settings.all_targets(), names[0])
            return journal_coverage(self.store, names[0], backup_time, rows)
        except RewindError as exc:
            log.warning("journal %s: coverage not read: %s", names[0], mask_dsn(str(exc)))
            return None

    def _plan(
        self,
        channel: str,
        user: str,
        user_name: str | None,
        sides: Sides,
        table: str,
        where: str | None,
        with_dependents: bool,
        revert: Sequence[str],
        command: str,
    ) -> None:
        progress = self.background.progress(channel, user, f"Restore plan for the deleted {table}")
        try:
            roots = reads.roots(sides, table, where)
            if not roots:
                progress.done(
                    "nothing to restore: live has every row the backup has" + (f" where {where}" if where else "")
                )
                return
            progress.say(f"{len(roots):,} deleted rows; building the plan…")
            plan = reads.plan(sides, table, roots, with_dependents=with_dependents, revert=revert, command=command)
            if plan.empty:
                progress.done("nothing to restore: every row it needs is already in live")
                return
            rows = sum(c.get("insert", 0) + c.get("update", 0) for c in plan.counts.values())
            figures = {"operation": "plan", "table": table, "where": where, "deleted": len(roots), "rows": rows}
            self._record(channel, user, f"Restore plan for {table}: {len(roots):,} deleted rows", figures)
            progress.say("dry-running it on live (rolled back)…")
            proposed = self.approvals.propose(
                channel,
                sides.live.name,
                plan.sql,
                user,
                proposer_name=user_name,
                kind="plan",
                summary=f"restore {len(roots):,} deleted rows of {table}"
                + (" with dependents" if with_dependents else ""),
                plan={
                    "table": table,
                    "where": where,
                    "with_dependents": with_dependents,
                    "revert": list(revert),
                    "backup": sides.backup_label,
                    "roots": len(roots),
                },
            )
        except RewindError as exc:
            progress.failed(str(exc))
            return
        self.proposals.publish(proposed.proposal, proposed.superseded)
        progress.done(f"posted as proposal #{proposed.proposal.number} ({proposed.proposal.status})")

    def _record(self, channel: str, user: str, text: str, figures: dict[str, Any]) -> Entry:
        return self.timeline.add(
            channel,
            EntryKind.RESTORE,
            text,
            user,
            data={k: v for k, v in figures.items() if v is not None},
            source=EntrySource.SYSTEM,
        )


def _key(key: Sequence[Any]) -> str:
    return "(" + ", ".join(str(k) for k in key) + ")"


__all__ = ["CSV_MAX_ROWS", "MAX_GAP_FLAGS", "RestoreJobs"]
