"""Proposing: dry-run the SQL on its production target (rolled back), then record the proposal, bound to the hash of
its exact text, superseding the incident's pending one."""

from typing import Any

from sqlalchemy import func, select, update

from bot.approvals.context import Context, timeline_entry
from bot.approvals.policy import eligible_users, sql_sha256
from bot.approvals.views import COMMAND, PENDING, Proposed, view
from bot.errors import UsageError
from bot.scribe.incidents import require_incident
from bot.store.models import EntryKind, EntrySource, Proposal, ProposalStatus
from bot.store.session import Store
from restore import apply
from restore.errors import RewindError
from restore.targets import Target, mask_dsn


def propose(
    ctx: Context,
    channel_id: str,
    target_name: str,
    sql_text: str,
    proposer_id: str,
    *,
    proposer_name: str | None = None,
    kind: str = "sql",
    summary: str | None = None,
    plan: dict[str, Any] | None = None,
) -> Proposed:
    """Dry-run the SQL (rolled back) and record the proposal; a pending one in the incident is superseded.

    A failed dry run is recorded as `failed` and supersedes nothing: it can never be approved."""
    if not sql_text.strip():
        raise UsageError("Give the SQL to propose.", "/inc propose prod UPDATE prices SET amount = 10 WHERE id = 7")
    target = ctx.target(target_name)
    with ctx.store.transaction() as session:
        require_incident(session, channel_id)  # before touching the target
    return record(
        ctx,
        channel_id,
        target,
        sql_text,
        proposer_id,
        proposer_name=proposer_name,
        kind=kind,
        summary=summary,
        plan=plan,
        dry=dry_run(ctx, target, sql_text),
    )


def record(
    ctx: Context,
    channel_id: str,
    target: Target,
    sql_text: str,
    proposer_id: str,
    *,
    proposer_name: str | None,
    kind: str,
    summary: str | None,
    plan: dict[str, Any] | None,
    dry: dict[str, Any],
) -> Proposed:
    """Record the proposal, bound to the hash of its exact text, with its dry run; a pending one in the incident is
    superseded. A failed dry run is recorded as `failed` and supersedes nothing. A script run (`command`) supersedes
    nothing and is superseded by nothing: it is no draft of the incident's SQL."""
    eligible = eligible_users(ctx.policy, ctx.group_members)
    now = ctx.clock()
    digest = sql_sha256(sql_text)
    with ctx.store.transaction() as session:
        incident = require_incident(session, channel_id, lock=True)
        superseded: list[Proposal] = []
        if dry["ok"] and kind != COMMAND:
            superseded = list(
                session.scalars(
                    select(Proposal)
                    .where(
                        Proposal.incident_id == incident.id,
                        Proposal.status.in_(PENDING),
                        Proposal.kind != COMMAND,
                    )
                    .with_for_update()
                )
            )
            for old in superseded:
                old.status, old.decided_at = ProposalStatus.SUPERSEDED, now
        number = (session.scalar(select(func.max(Proposal.number)).where(Proposal.incident_id == incident.id)) or 0) + 1
        proposal = Proposal(
            incident_id=incident.id,
            number=number,
            kind=kind,
            summary=summary or _summary_of(sql_text),
            target=target.name,
            sql_text=sql_text,
            sql_sha256=digest,
            status=ProposalStatus.PROPOSED if dry["ok"] else ProposalStatus.FAILED,
            proposer_id=proposer_id,
            proposer_name=proposer_name,
            approvals_required=ctx.policy.approvals_required,
            eligible={"users": eligible},
            dry_run=dry,
            plan=plan,
            channel_id=channel_id,
            created_at=now,
            remind_at=now + ctx.policy.ttl / 2,
            expires_at=now + ctx.policy.ttl,
            decided_at=None if dry["ok"] else now,
            result=None if dry["ok"] else {"error": dry["error"], "stage": "dry run"},
        )
        session.add(proposal)
        session.flush()
        outcome = "proposed" if dry["ok"] else "proposed; its dry run failed, so it cannot be approved"
        text = f"Proposal #{number} on {target.name} {outcome}: {proposal.summary} (SQL sha256 {digest[:12]})"
        data = {
            "proposal": number,
            "sql_sha256": digest,
            "target": target.name,
            "status": proposal.status,
            "dry_run_rows": dry.get("rows_affected"),
        }
        session.add(
            timeline_entry(
                incident,
                EntryKind.PROPOSAL,
                text,
                now,
                data,
                source=EntrySource.COMMAND,
                user_id=proposer_id,
                user_name=proposer_name,
            )
        )
        for old in superseded:
            session.add(
                timeline_entry(
                    incident,
                    EntryKind.PROPOSAL,
                    f"Proposal #{old.number} superseded by #{number}",
                    now,
                    {"proposal": old.number, "status": ProposalStatus.SUPERSEDED},
                )
            )
        session.flush()
        return Proposed(view(session, proposal), [view(session, old) for old in superseded])


def dry_run(ctx: Context, target: Target, sql_text: str) -> dict[str, Any]:
    """The SQL run and rolled back under the policy's timeouts: its per-statement counts, or the (masked) error."""
    timeouts = {
        "statement_timeout_s": ctx.policy.statement_timeout_s,
        "lock_timeout_s": ctx.policy.lock_timeout_s,
    }
    try:
        result = apply.dry_run(target, sql_text, **timeouts)
    except RewindError as exc:
        return {"ok": False, "error": mask_dsn(str(exc)), **timeouts}
    return {
        "ok": True,
        "counts": result.counts,
        "statements": [{"statement": s.statement, "rows": s.rowcount} for s in result.statements],
        "rows_affected": result.rows_affected,
        "seconds": result.seconds,
        **timeouts,
    }


def attach_message(store: Store, proposal_id: int, message_ts: str) -> None:
    """The Slack message that carries the proposal: reactions on it are decisions on this proposal."""
    with store.transaction() as session:
        session.execute(update(Proposal).where(Proposal.id == proposal_id).values(message_ts=message_ts))


def _summary_of(sql_text: str) -> str:
    first = " ".join(sql_text.split())
    return first[:80] + ("…" if len(first) > 80 else "")
