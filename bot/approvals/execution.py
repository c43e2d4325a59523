"""Execution, exactly once, and recovery when a process dies mid-way.

- `approved -> executing` is a conditional UPDATE (`claim_execution`): its rowcount says which caller, in any bot
  process sharing the store, runs the SQL. Only that caller calls `execute`.
- `execute` runs the SQL in one target transaction with timeouts, checks its counts against the dry run's, and writes
  the target's transaction id to the store before COMMIT (`on_xid`).
- `reconcile` asks the target (`pg_xact_status`) what became of an execution whose process died, instead of running
  it again.
"""

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from bot.approvals.context import Context, timeline_entry
from bot.approvals.policy import sql_sha256
from bot.approvals.views import COMMAND, ProposalView, standing_approvers, view
from bot.errors import UsageError
from bot.store.models import AuditLog, EntryKind, Incident, Proposal, ProposalStatus
from bot.store.session import Store
from restore import apply
from restore.errors import RewindError
from restore.targets import mask_dsn

log = logging.getLogger("rewind.approvals")


def claim_execution(ctx: Context, proposal_id: int) -> bool:
    """`approved -> executing` as a conditional UPDATE: exactly one caller, in any process, gets rowcount 1."""
    with ctx.store.transaction() as session:
        result = session.execute(
            update(Proposal)
            .where(Proposal.id == proposal_id, Proposal.status == ProposalStatus.APPROVED)
            .values(status=ProposalStatus.EXECUTING, executing_since=ctx.clock()),
            execution_options={"synchronize_session": False},
        )
        return result.rowcount == 1  # type: ignore[attr-defined]


def execute(ctx: Context, proposal_id: int) -> ProposalView:
    """Run a proposal this caller claimed: one transaction, timeouts set, counts checked against the dry run,
    the xid stored before COMMIT. Records the outcome (proposal, timeline, audit log) and returns it."""
    with ctx.store.transaction() as session:
        proposal = session.get_one(Proposal, proposal_id)
        if proposal.status != ProposalStatus.EXECUTING or proposal.xid is not None or proposal.result is not None:
            raise UsageError(f"Proposal #{proposal.number} is {proposal.status}; it runs only once.")
        if proposal.kind == COMMAND:  # its text describes a command; only the requester's process runs it
            raise UsageError(f"Proposal #{proposal.number} is a script run; the process that asked for it runs it.")
        sql_text, target_name = proposal.sql_text, proposal.target
        expected = (proposal.dry_run or {}).get("counts")
        if sql_sha256(sql_text) != proposal.sql_sha256:  # the store was tampered with: never run it
            raise UsageError(f"Proposal #{proposal.number}'s SQL no longer matches its hash; it will not run.")
    started = ctx.clock()
    try:
        target = ctx.target(target_name)
        result = apply.execute(
            target,
            sql_text,
            expected_counts=expected,
            on_xid=lambda xid: record_xid(ctx.store, proposal_id, xid),
            statement_timeout_s=ctx.policy.statement_timeout_s,
            lock_timeout_s=ctx.policy.lock_timeout_s,
        )
    except RewindError as exc:
        return finish(ctx, proposal_id, ok=False, error=mask_dsn(str(exc)), started=started)
    except Exception as exc:  # a driver or network failure: the xid (if stored) tells reconcile() the truth
        log.exception("proposal %s: execution interrupted", proposal_id)
        return finish(ctx, proposal_id, ok=False, error=f"interrupted: {mask_dsn(str(exc))}", started=started)
    return finish(
        ctx, proposal_id, ok=True, counts=result.counts, seconds=result.seconds, started=started, xid=result.xid
    )


def record_xid(store: Store, proposal_id: int, xid: int) -> None:
    """The target's transaction id, committed to the store before the target COMMITs: what `reconcile` asks about."""
    with store.transaction() as session:
        session.execute(
            update(Proposal)
            .where(Proposal.id == proposal_id, Proposal.status == ProposalStatus.EXECUTING)
            .values(xid=xid),
            execution_options={"synchronize_session": False},
        )


def finish(
    ctx: Context,
    proposal_id: int,
    *,
    ok: bool,
    started: datetime,
    counts: Sequence[int] | None = None,
    seconds: float | None = None,
    error: str | None = None,
    xid: int | None = None,
    how: str = "",
    result_extra: dict[str, Any] | None = None,
) -> ProposalView:
    now = ctx.clock()
    with ctx.store.transaction() as session:
        proposal = session.scalars(select(Proposal).where(Proposal.id == proposal_id).with_for_update()).one()
        if proposal.status != ProposalStatus.EXECUTING:  # someone else (reconcile) already recorded it
            return view(session, proposal)
        status = ProposalStatus.EXECUTED if ok else ProposalStatus.FAILED
        duration = seconds if seconds is not None else round((now - started).total_seconds(), 3)
        rows = sum(counts) if counts is not None else None
        proposal.status, proposal.finished_at = status, now
        proposal.xid = proposal.xid if xid is None else xid
        proposal.result = {"counts": list(counts or []), "rows_affected": rows, "seconds": duration}
        if error:
            proposal.result["error"] = error
        if how:
            proposal.result["how"] = how
        proposal.result.update(result_extra or {})
        session.add(
            AuditLog(
                at=now,
                incident_id=proposal.incident_id,
                proposal_id=proposal.id,
                sql_sha256=proposal.sql_sha256,
                target=proposal.target,
                proposer_id=proposal.proposer_id,
                approvers={"users": standing_approvers(session, proposal)},
                row_counts={"counts": list(counts or []), "rows_affected": rows} if counts is not None else None,
                duration_s=duration,
                outcome=status.value,
                detail=" ".join(part for part in (error, how) if part) or None,
            )
        )
        incident = session.get_one(Incident, proposal.incident_id)
        if ok and proposal.kind == COMMAND:
            text = f"Proposal #{proposal.number} ran its command against {proposal.target} in {duration:.2f}s"
        elif ok:
            text = f"Proposal #{proposal.number} executed on {proposal.target}: {rows} rows in {duration:.2f}s"
        else:
            text = f"Proposal #{proposal.number} failed on {proposal.target}: {error}"
        text += f" {how}".rstrip() if how else ""
        data = {"proposal": proposal.number, "sql_sha256": proposal.sql_sha256, "status": status.value}
        if rows is not None:
            data["rows_affected"] = rows
        session.add(timeline_entry(incident, EntryKind.EXECUTION, text, now, data))
        session.flush()
        return view(session, proposal)


def record_verification(ctx: Context, proposal_id: int, figures: dict[str, Any], text: str) -> None:
    """The diff run after a generated plan executed: what is still left to restore."""
    now = ctx.clock()
    with ctx.store.transaction() as session:
        proposal = session.get_one(Proposal, proposal_id)
        proposal.result = {**(proposal.result or {}), "verification": figures}
        incident = session.get_one(Incident, proposal.incident_id)
        session.add(timeline_entry(incident, EntryKind.RESTORE, text, now, figures))


# --- crash recovery -------------------------------------------------------------------------------------------------


def reconcile(ctx: Context, *, stale_after: timedelta = timedelta(minutes=10)) -> list[ProposalView]:
    """Resolve executions a dead process left behind, from the target's own record; never re-execute.

    - `executing` with an xid: `pg_xact_status(xid)` says committed (-> executed) or aborted (-> failed);
      in progress means its process is still at work: left alone.
    - `executing` without an xid, older than `stale_after`: COMMIT comes after the xid is stored, so nothing
      committed; the target rolled the transaction back when the connection dropped (-> failed).
    Returns the proposals it resolved (for reporting)."""
    now = ctx.clock()
    with ctx.store.transaction() as session:
        stuck = list(session.scalars(select(Proposal).where(Proposal.status == ProposalStatus.EXECUTING)))
        stuck_ids = [(p.id, p.xid, p.target, p.executing_since, p.dry_run) for p in stuck]
    resolved = []
    for proposal_id, xid, target_name, since, dry in stuck_ids:
        started = since or now
        if xid is None:
            if since is not None and now - since < stale_after:
                continue
            how = "(reconciled after a restart: the bot stopped before COMMIT, so nothing was committed)"
            resolved.append(finish(ctx, proposal_id, ok=False, started=started, error="interrupted", how=how))
            continue
        try:
            status = apply.check_xact(ctx.target(target_name), xid)
        except RewindError as exc:
            log.warning("proposal %s: cannot check xid %s yet: %s", proposal_id, xid, mask_dsn(str(exc)))
            continue
        if status == "committed":
            how = f"(reconciled after a restart: pg_xact_status({xid}) = committed)"
            counts = (dry or {}).get("counts")  # COMMIT is reached only when the counts equal the dry run's
            resolved.append(finish(ctx, proposal_id, ok=True, started=started, counts=counts, how=how, xid=xid))
        elif status == "aborted":
            how = f"(reconciled after a restart: pg_xact_status({xid}) = aborted; nothing was changed)"
            resolved.append(finish(ctx, proposal_id, ok=False, started=started, error="rolled back", how=how))
        elif status is None:
            log.warning("proposal %s: the target no longer knows xid %s; check it by hand", proposal_id, xid)
    return resolved


def approved_unclaimed(store: Store) -> list[int]:
    """Approved proposals whose executing process died before claiming them: still safe to run once."""
    with store.transaction() as session:
        approved = select(Proposal.id).where(Proposal.status == ProposalStatus.APPROVED, Proposal.kind != COMMAND)
        return list(session.scalars(approved))
