"""Restore work from the channel, run in the background (issue 5): queries, replicas, diffs, deps, gaps, plans,
proposals' dry runs and executions.

Slash commands must be acknowledged within three seconds, so a handler only validates (fast, synchronous: the
parser's verdict, the targets, the incident) and then `submit()`s the work here. Each job posts a message, a progress
reply in its thread that it keeps updated, and records its figures as a `restore` timeline entry.

Which databases restore work compares (the rule `sides()` applies):
- *backup*: the replica most recently provisioned in this incident by `/inc replica up`, else REWIND_BACKUP_TARGET,
  else the only target with role `backup`;
- *live*: REWIND_LIVE_TARGET, else the only `production` target. Proposals aim at it.
A `where` typed in Slack is only ever evaluated in READ ONLY transactions on the backup side (or on a `replica`
named by REWIND_LIVE_REPLICA_TARGET, for diffs): live rows are then matched by key, with SQL Rewind writes itself.

Messages go through a `Notifier` (plain values in; `handlers/` renders them for Slack).
"""

import csv
import io
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from psycopg import sql
from sqlalchemy import select

from bot.approvals.service import ProposalService
from bot.approvals.views import ProposalView, Verdict
from bot.config import Settings
from bot.errors import ConfigError, UsageError
from bot.scribe.incidents import require_incident
from bot.scribe.timeline import TimelineService
from bot.store.models import Entry, EntryKind, EntrySource
from bot.store.session import Store
from restore import replica as replicas
from restore.diff import diff_table
from restore.errors import RewindError
from restore.gap import find_gap
from restore.graph import RowStatus, build_graph
from restore.keys import deleted_keys, table_key
from restore.plan import make_plan
from restore.query import QueryResult, run_read_only
from restore.targets import Target, TargetRole, mask_dsn, require_role

log = logging.getLogger("rewind.restore")

CELL_WIDTH = 24  # characters per column in the inline table
CSV_MAX_ROWS = 10_000
MAX_GAP_FLAGS = 25  # one yellow flag per row up to this; one more flag sums up the rest
KEY_LIMIT = 100_000


class Notifier(Protocol):
    """How jobs speak in the channel. Implemented over the Slack Web API in handlers/restore.py."""

    def post(self, channel: str, text: str, *, thread_ts: str | None = None) -> str: ...

    def update(self, channel: str, ts: str, text: str) -> None: ...

    def upload(
        self, channel: str, filename: str, content: str, *, thread_ts: str | None = None, comment: str | None = None
    ) -> None: ...

    def tell(self, channel: str, user: str, text: str) -> None: ...

    def show_proposal(self, proposal: ProposalView) -> str | None: ...


@dataclass(frozen=True)
class Sides:
    backup: Target
    live: Target  # production: proposals aim here; read only by key
    live_read: Target  # where a `where` may run on the live side: a replica of production, else production itself
    backup_label: str


class Progress:
    """A job's threaded progress reply, updated in place."""

    def __init__(self, notifier: Notifier, channel: str, title: str, user: str) -> None:
        self.notifier, self.channel, self.title = notifier, channel, title
        self.parent = notifier.post(channel, f":hourglass_flowing_sand: {title} — started by <@{user}>")
        self.ts = notifier.post(channel, "Starting…", thread_ts=self.parent)
        self.lines: list[str] = []

    def say(self, line: str) -> None:
        self.lines = [*self.lines, mask_dsn(line)][-12:]
        self.notifier.update(self.channel, self.ts, "\n".join(self.lines))

    def done(self, summary: str) -> None:
        self.notifier.update(self.channel, self.parent, f":white_check_mark: {self.title}: {summary}")
        self.say(f"Done: {summary}")

    def failed(self, error: str) -> None:
        self.notifier.update(self.channel, self.parent, f":warning: {self.title} failed: {mask_dsn(error)}")
        self.say(f"Failed: {mask_dsn(error)}")


class RestoreJobs:
    def __init__(self, settings: Settings, store: Store, timeline: TimelineService, approvals: ProposalService) -> None:
        self.settings = settings
        self.store = store
        self.timeline = timeline
        self.approvals = approvals
        self.executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="rewind-job")
        self.notifier: Notifier | None = None
        self._pending: set[Future[Any]] = set()
        self._pending_lock = threading.Lock()

    def bind(self, notifier: Notifier) -> None:
        """The composition root hands over the Slack side once the app's client exists."""
        self.notifier = notifier

    def submit(self, work: Callable[..., Any], *args: Any) -> Future[Any]:
        def run() -> Any:
            try:
                return work(*args)
            except Exception:
                log.exception("background job %s failed", getattr(work, "__name__", work))
                raise

        future = self.executor.submit(run)
        with self._pending_lock:
            self._pending.add(future)
        future.add_done_callback(self._forget)
        return future

    def _forget(self, future: Future[Any]) -> None:
        with self._pending_lock:
            self._pending.discard(future)

    def wait_idle(self) -> None:
        """Until every submitted job, and any job those jobs submitted, has finished."""
        while True:
            with self._pending_lock:
                pending = list(self._pending)
            if not pending:
                return
            wait(pending)

    def shutdown(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=False)

    @property
    def _notify(self) -> Notifier:
        if self.notifier is None:
            raise ConfigError("Restore jobs have no notifier: build the app with bot.app.build_app first.")
        return self.notifier

    # --- targets ---------------------------------------------------------------------------------------------------

    def targets(self) -> list[Target]:
        return sorted(self.settings.all_targets().values(), key=lambda t: (t.role.value, t.name))

    def query_target(self, name: str) -> Target:
        targets = self.settings.all_targets()
        if name not in targets:
            known = ", ".join(f"{t.name} ({t.role.value})" for t in self.targets()) or "none (set REWIND_TARGETS)"
            raise UsageError(f"Unknown target {name!r}. Configured targets: {known}.", "/inc targets")
        target = targets[name]
        if target.role is TargetRole.PRODUCTION:
            readable = [t.name for t in self.targets() if t.role is not TargetRole.PRODUCTION]
            hint = f" Ask {' or '.join(readable)} instead." if readable else " Configure a replica or backup target."
            raise UsageError(f"{name} is a production target: `/inc query` never runs there.{hint}", "/inc targets")
        return target

    def sides(self, channel_id: str) -> Sides:
        """The backup and live targets of this incident (see the module's docstring for the rule)."""
        live = self._live()
        live_read = live
        replica_name = self.settings.live_replica_target
        if replica_name:
            live_read = require_role(self._configured(replica_name, "REWIND_LIVE_REPLICA_TARGET"), TargetRole.REPLICA)
        record = self._incident_replica(channel_id)
        if record is not None:
            backup = Target(name=f"replica {record.name}", dsn=record.dsn, role=TargetRole.BACKUP)
            return Sides(backup, live, live_read, f"replica {record.name}")
        if self.settings.backup_target:
            backup = self._configured(self.settings.backup_target, "REWIND_BACKUP_TARGET")
            require_role(backup, TargetRole.BACKUP, TargetRole.REPLICA)
            return Sides(backup, live, live_read, backup.name)
        backups = [t for t in self.targets() if t.role is TargetRole.BACKUP]
        if len(backups) == 1:
            return Sides(backups[0], live, live_read, backups[0].name)
        names = ", ".join(sorted(self.settings.backups)) or "none configured (REWIND_BACKUPS)"
        raise UsageError(
            "There is no backup to compare with in this incident. Provision one with `/inc replica up <backup>` "
            f"(backups: {names}), or name a backup target in REWIND_BACKUP_TARGET.",
            "/inc replica up " + (sorted(self.settings.backups)[0] if self.settings.backups else "nightly"),
        )

    def _live(self) -> Target:
        if self.settings.live_target:
            target = self._configured(self.settings.live_target, "REWIND_LIVE_TARGET")
            return require_role(target, TargetRole.PRODUCTION)
        production = [t for t in self.targets() if t.role is TargetRole.PRODUCTION]
        if len(production) == 1:
            return production[0]
        found = ", ".join(t.name for t in production) or "none"
        raise UsageError(
            f"Restore work needs one live (production) target; found {found}. Set REWIND_LIVE_TARGET to its name "
            'and REWIND_TARGETS to e.g. {"prod": {"dsn": "postgresql://…", "role": "production"}}.'
        )

    def _configured(self, name: str, variable: str) -> Target:
        target = self.settings.all_targets().get(name)
        if target is None:
            raise UsageError(f"{variable} names {name!r}, which is not in REWIND_TARGETS.")
        return target

    def _incident_replica(self, channel_id: str) -> replicas.ReplicaRecord | None:
        with self.store.transaction() as session:
            incident = require_incident(session, channel_id)
            entries = session.scalars(
                select(Entry)
                .where(Entry.incident_id == incident.id, Entry.kind == EntryKind.RESTORE, Entry.deleted_at.is_(None))
                .order_by(Entry.id.desc())
            )
            names = [e.data["replica"] for e in entries if e.data and e.data.get("operation") == "replica up"]
        for name in names:
            try:
                return replicas.get_record(name)
            except RewindError:
                continue  # taken down since
        return None

    def backup_dump(self, name: str) -> Path:
        if name not in self.settings.backups:
            known = ", ".join(sorted(self.settings.backups)) or "none (set REWIND_BACKUPS to {name: path})"
            raise UsageError(f"Unknown backup {name!r}. Configured backups: {known}.", "/inc replica up <backup>")
        path = Path(self.settings.backups[name])
        if path.is_dir() and not (path / "toc.dat").exists():  # a directory of dumps: the newest one
            dumps = sorted((p for p in path.iterdir() if not p.name.startswith(".")), key=lambda p: p.stat().st_mtime)
            if not dumps:
                raise UsageError(f"Backup {name!r} is a directory with no dumps in it ({path.name}).")
            return dumps[-1]
        return path

    # --- jobs ---------------------------------------------------------------------------------------------------------

    def query(self, channel: str, user: str, target: Target, sql_text: str) -> None:
        """Run a read-only query (already parsed as read-only) and post a compact table, plus a CSV when larger."""
        notifier = self._notify
        try:
            result = run_read_only(target, sql_text, limit=CSV_MAX_ROWS, timeout_s=10)
        except RewindError as exc:
            notifier.tell(channel, user, f":warning: {target.name}: {mask_dsn(str(exc))}")
            return
        shown = self.settings.query_max_rows
        text = f"`{target.name}` ({target.role.value}) — <@{user}> asked:\n```{_clip(sql_text, 500)}```\n"
        text += format_table(result, shown)
        ts = notifier.post(channel, text)
        if result.row_count > shown:
            more = " (capped)" if result.truncated else ""
            notifier.upload(
                channel,
                f"{target.name}-query.csv",
                to_csv(result),
                thread_ts=ts,
                comment=f"All {result.row_count:,} rows{more} as CSV.",
            )

    def replica_up(self, channel: str, user: str, backup: str, dump: Path, tables: Sequence[str]) -> None:
        progress = Progress(self._notify, channel, f"Provisioning a replica from backup {backup}", user)
        try:
            made = replicas.provision(
                dump, server_dsn=self.settings.replica_server_dsn, tables=tables, progress=progress.say
            )
        except RewindError as exc:
            progress.failed(str(exc))
            return
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
        self._record(channel, user, f"Replica {made.name} provisioned from backup {backup}", figures)
        progress.done(summary)

    def diff(self, channel: str, user: str, sides: Sides, table: str, where: str | None) -> None:
        live = sides.live_read if where else sides.live
        progress = Progress(self._notify, channel, f"Diff of {table} ({sides.backup_label} vs {live.name})", user)
        try:
            result = diff_table(sides.backup, live, table, where=where)
        except RewindError as exc:
            progress.failed(str(exc))
            return
        counts = result.counts
        figures = {"operation": "diff", "table": result.table, "where": where, **counts}
        summary = ", ".join(f"{counts.get(k, 0):,} {k}" for k in ("deleted", "added", "changed"))
        self._record(channel, user, f"Diff of {result.table}: {summary}", figures)
        progress.done(summary)

    def deps(self, channel: str, user: str, sides: Sides, table: str, where: str | None) -> None:
        progress = Progress(self._notify, channel, f"Rows that depend on the deleted {table}", user)
        try:
            progress.say("finding the deleted rows…")
            roots = self.deleted_roots(sides, table, where)
            progress.say(f"{len(roots):,} deleted; following foreign keys…")
            counts = build_graph(sides.backup, sides.live, table, roots, with_dependents=True).counts() if roots else {}
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

    def gap(self, channel: str, user: str, sides: Sides, table: str, where: str | None) -> None:
        progress = Progress(self._notify, channel, f"What the backup cannot give back ({table})", user)
        try:
            roots = self.deleted_roots(sides, table, where)
            result = find_gap(sides.backup, sides.live, table, keys=roots)
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
        self._record(channel, user, f"Gap for the deleted {table}: {len(rows):,} rows postdate the backup", figures)
        progress.done(summary)

    def plan(
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
        progress = Progress(self._notify, channel, f"Restore plan for the deleted {table}", user)
        try:
            roots = self.deleted_roots(sides, table, where)
            if not roots:
                progress.done(
                    "nothing to restore: live has every row the backup has" + (f" where {where}" if where else "")
                )
                return
            progress.say(f"{len(roots):,} deleted rows; building the plan…")
            plan = make_plan(
                sides.backup, sides.live, table, roots, with_dependents=with_dependents, revert=revert, command=command
            )
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
        self.publish(proposed.proposal, proposed.superseded)
        progress.done(f"posted as proposal #{proposed.proposal.number} ({proposed.proposal.status})")

    def propose(self, channel: str, user: str, user_name: str | None, target: str, sql_text: str) -> None:
        try:
            proposed = self.approvals.propose(channel, target, sql_text, user, proposer_name=user_name)
        except RewindError as exc:
            self._notify.tell(channel, user, f":warning: {mask_dsn(str(exc))}")
            return
        self.publish(proposed.proposal, proposed.superseded)

    def publish(self, proposal: ProposalView, superseded: Sequence[ProposalView] = ()) -> None:
        """Post the proposal message (and show the ones it superseded as such)."""
        notifier = self._notify
        ts = notifier.show_proposal(proposal)
        if ts and not proposal.message_ts:
            self.approvals.attach_message(proposal.id, ts)
        for old in superseded:
            notifier.show_proposal(old)
            if old.message_ts:
                notifier.post(
                    old.channel_id,
                    f"Superseded by proposal #{proposal.number}; its approvals do not carry over.",
                    thread_ts=old.message_ts,
                )

    def execute(self, proposal_id: int) -> ProposalView:
        """Run a proposal this process claimed (Verdict.EXECUTE), then report in its thread."""
        notifier = self._notify
        view = self.approvals.get(proposal_id)
        if view.message_ts:
            notifier.post(view.channel_id, f":gear: Executing on {view.target}…", thread_ts=view.message_ts)
        done = self.approvals.execute(proposal_id)
        self.report(done)
        if done.status == "executed" and done.kind == "plan" and done.plan:
            self.verify(done)
        return done

    def report(self, view: ProposalView) -> None:
        notifier = self._notify
        notifier.show_proposal(view)
        if view.message_ts:
            notifier.post(view.channel_id, execution_text(view), thread_ts=view.message_ts)

    def verify(self, view: ProposalView) -> None:
        """After a generated plan ran: how many of the deleted rows are still missing (normally none)."""
        plan = view.plan or {}
        try:
            sides = self.sides(view.channel_id)
            left = len(self.deleted_roots(sides, plan["table"], plan.get("where")))
        except RewindError as exc:
            text = f"Verification diff could not run: {mask_dsn(str(exc))}"
            if view.message_ts:
                self._notify.post(view.channel_id, text, thread_ts=view.message_ts)
            return
        figures = {"operation": "verify", "table": plan["table"], "proposal": view.number, "left_to_restore": left}
        text = (
            f"Verification diff of {plan['table']} after proposal #{view.number}: {left:,} deleted rows left to restore"
        )
        self.approvals.record_verification(view.id, figures, text)
        if view.message_ts:
            self._notify.post(view.channel_id, f":mag: {text}.", thread_ts=view.message_ts)

    def decided(self, verdict: Verdict, proposal: ProposalView) -> None:
        """After a counted approval, a revocation or a rejection: refresh the message; run it if ours to run."""
        if verdict is Verdict.EXECUTE:
            self.submit(self.execute, proposal.id)
            return
        self._notify.show_proposal(proposal)

    # --- scheduler and start-up -------------------------------------------------------------------------------------

    def run_due(self) -> None:
        """Expire proposals past their TTL and remind approvers halfway (the scheduler calls this every minute)."""
        notifier = self._notify
        for view in self.approvals.expire_due():
            notifier.show_proposal(view)
            if view.message_ts:
                notifier.post(view.channel_id, "Expired without enough approvals.", thread_ts=view.message_ts)
        for view in self.approvals.remind_due():
            who = " ".join(f"<@{u}>" for u in view.eligible) or "Approvers"
            left = max(0, view.approvals_required - len(view.approvers))
            text = (
                f":hourglass: {who}: proposal #{view.number} on {view.target} needs {left} more approval(s) "
                f"before it expires at {view.expires_at:%H:%M} UTC. React with ✅ on it to approve, ❌ to reject."
            )
            try:
                notifier.post(view.channel_id, text, thread_ts=view.message_ts)
            except Exception:
                log.exception("reminder for proposal %s not posted; it will be retried", view.id)
                self.approvals.release_reminder(view.id)

    def reconcile(self) -> list[ProposalView]:
        """At start-up: resolve executions a dead process left `executing`, report them; run approved leftovers."""
        resolved = self.approvals.reconcile()
        for view in resolved:
            if self.notifier is not None:
                self.report(view)
        for proposal_id in self.approvals.approved_unclaimed():
            if self.approvals.claim_execution(proposal_id):
                self.submit(self.execute, proposal_id)
        return resolved

    # --- helpers ------------------------------------------------------------------------------------------------

    def deleted_roots(self, sides: Sides, table: str, where: str | None) -> list[tuple[Any, ...]]:
        """Keys of `table` in the backup that live no longer has. A `where` runs only on the backup, read-only; live
        rows are looked up by key."""
        if not where:
            return deleted_keys(sides.backup, sides.live, table)
        key = table_key(sides.backup, table)
        statement = sql.SQL("SELECT {} FROM {} WHERE ({})").format(
            sql.SQL(", ").join(sql.Identifier(c) for c in key), _qualified(table), sql.SQL(where)
        )
        result = run_read_only(sides.backup, statement.as_string(None), limit=KEY_LIMIT, timeout_s=30)
        if result.truncated:
            raise UsageError(f"More than {KEY_LIMIT:,} rows match; narrow the where condition.")
        candidates = [tuple(row) for row in result.rows]
        if not candidates:
            return []
        graph = build_graph(sides.backup, sides.live, table, candidates, with_dependents=False)
        root = graph.rows.get(graph.root_table, {})
        return [row.key for row in root.values() if row.status is RowStatus.MISSING]

    def _record(self, channel: str, user: str, text: str, figures: dict[str, Any]) -> Entry:
        return self.timeline.add(
            channel,
            EntryKind.RESTORE,
            text,
            user,
            data={k: v for k, v in figures.items() if v is not None},
            source=EntrySource.SYSTEM,
        )


# --- rendering as plain text ----------------------------------------------------------------------------------------


def _qualified(table: str) -> sql.Composable:
    parts = table.split(".", 1)
    return sql.Identifier(*parts)


def _key(key: Sequence[Any]) -> str:
    return "(" + ", ".join(str(k) for k in key) + ")"


def _clip(text: str, width: int) -> str:
    text = text.replace("```", "'''")
    return text if len(text) <= width else text[: width - 1] + "…"


def _cell(value: Any) -> str:
    text = "NULL" if value is None else str(value)
    text = " ".join(text.split())
    return text if len(text) <= CELL_WIDTH else text[: CELL_WIDTH - 1] + "…"


def format_table(result: QueryResult, max_rows: int) -> str:
    """A code block: at most `max_rows` rows, cells cut at CELL_WIDTH characters, then a one-line summary."""
    if not result.columns:
        return "_The statement returned no rows._"
    rows = [[_cell(v) for v in row] for row in result.rows[:max_rows]]
    header = [_cell(c) for c in result.columns]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = lambda cells: " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()  # noqa: E731
    body = [line(header), "-+-".join("-" * w for w in widths), *(line(r) for r in rows)]
    more = result.row_count - len(rows)
    summary = f"{result.row_count:,} row(s) in {result.seconds:.2f}s"
    if more > 0:
        summary += f"; {len(rows)} shown, all of them in the CSV below"
    if result.truncated:
        summary += f" (stopped at {result.row_count:,})"
    return "```" + _clip("\n".join(body), 2700) + "```\n" + summary


def to_csv(result: QueryResult) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(result.columns)
    writer.writerows(["" if v is None else v for v in row] for row in result.rows)
    return out.getvalue()


def execution_text(view: ProposalView) -> str:
    result = view.result or {}
    approvers = ", ".join(f"<@{u}>" for u in view.approvers) or "nobody"
    if view.status == "executed":
        counts = ", ".join(str(c) for c in result.get("counts", []))
        return (
            f":white_check_mark: Proposal #{view.number} executed on {view.target}: "
            f"{result.get('rows_affected', 0):,} rows (per statement: {counts}) in {result.get('seconds', 0):.2f}s, "
            f"approved by {approvers}. {result.get('how', '')}".rstrip()
        )
    return (
        f":x: Proposal #{view.number} failed on {view.target}: {result.get('error', 'unknown error')} "
        f"{result.get('how', '')}".rstrip()
    )


__all__ = ["Notifier", "Progress", "RestoreJobs", "Sides", "execution_text", "format_table", "to_csv"]
