"""Approve, revoke, reject: each decision runs in one store transaction that first claims the Slack event id (a
redelivery is a `DUPLICATE`) and then locks the proposal row (`SELECT … FOR UPDATE` on Postgres; SQLite serialises
writers). Reaching the threshold moves `proposed -> approved` under that lock; which caller then executes is decided
by the conditional UPDATE in `bot.approvals.execution.claim_execution`."""

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.approvals.context import Context, timeline_entry
from bot.approvals.execution import claim_execution
from bot.approvals.policy import Policy, is_agent
from bot.approvals.views import COMMAND, PENDING, Decision, Verdict, get, standing_approvers, view
from bot.scribe.timeline import DuplicateEvent, claim_event
from bot.store.models import EntryKind, EntrySource, Incident, Proposal, ProposalApproval, ProposalStatus

Act = Callable[[Session, Proposal, str, datetime], Decision]


def approve(ctx: Context, proposal_id: int, user_id: str, *, event_id: str | None = None) -> Decision:
    """Count `user_id`'s approval; when it reaches the threshold, claim the execution (see Verdict.EXECUTE)."""
    decision = _decide(ctx, proposal_id, user_id, event_id, _approve)
    if decision.verdict is Verdict.EXECUTE and decision.proposal is not None and decision.proposal.kind == COMMAND:
        return Decision(Verdict.APPROVED, decision.proposal)
    if decision.verdict is Verdict.EXECUTE and decision.proposal is not None:
        if not claim_execution(ctx, decision.proposal.id):
            return Decision(Verdict.COUNTED, get(ctx.store, decision.proposal.id))
        return Decision(Verdict.EXECUTE, get(ctx.store, decision.proposal.id))
    return decision


def revoke(ctx: Context, proposal_id: int, user_id: str, *, event_id: str | None = None) -> Decision:
    return _decide(ctx, proposal_id, user_id, event_id, _revoke)


def reject(ctx: Context, proposal_id: int, user_id: str, *, event_id: str | None = None) -> Decision:
    return _decide(ctx, proposal_id, user_id, event_id, _reject)


def _decide(ctx: Context, proposal_id: int, user_id: str, event_id: str | None, act: Act) -> Decision:
    now = ctx.clock()
    try:
        with ctx.store.transaction() as session:
            claim_event(session, event_id)
            proposal = session.scalars(
                select(Proposal).where(Proposal.id == proposal_id).with_for_update()
            ).one_or_none()
            if proposal is None:
                return Decision(Verdict.IGNORED)
            refusal = _refusal(proposal, user_id)
            if refusal is not None:
                return Decision(refusal[0], view(session, proposal), refusal[1])
            return act(session, proposal, user_id, now)
    except DuplicateEvent:
        return Decision(Verdict.DUPLICATE)


def _refusal(proposal: Proposal, user_id: str) -> tuple[Verdict, str] | None:
    label = f"Proposal #{proposal.number}"
    if is_agent(user_id):
        return Verdict.NOT_ELIGIBLE, (
            f"{user_id} is an agent: an agent can read and propose, never approve or reject. {label} needs "
            f"{proposal.approvals_required} approvals from {_who(proposal)}."
        )
    if user_id == proposal.proposer_id:
        return Verdict.PROPOSER, (
            f"{label} is yours: a proposer's approval or rejection never counts. "
            f"It needs {proposal.approvals_required} approvals from {_who(proposal)}."
        )
    eligible = (proposal.eligible or {}).get("users") or []
    if eligible and user_id not in eligible:
        return Verdict.NOT_ELIGIBLE, (
            f"You are not an approver for {label}, so your reaction counts for nothing. "
            f"It needs approvals from {_who(proposal)} (REWIND_APPROVERS)."
        )
    if proposal.status not in PENDING:
        return Verdict.NOT_PENDING, f"{label} is {proposal.status}; there is nothing to approve or reject."
    return None


def _who(proposal: Proposal) -> str:
    """Who may approve this proposal: the users eligible when it was made, not today's policy."""
    users = (proposal.eligible or {}).get("users") or []
    return Policy(approvers=tuple(users)).who()


def _approve(session: Session, proposal: Proposal, user_id: str, now: datetime) -> Decision:
    if session.get(ProposalApproval, (proposal.id, user_id)) is not None:
        return Decision(Verdict.ALREADY, view(session, proposal), "Your approval is already counted.")
    session.add(ProposalApproval(proposal_id=proposal.id, user_id=user_id, sql_sha256=proposal.sql_sha256))
    session.flush()
    count = len(standing_approvers(session, proposal))
    incident = session.get_one(Incident, proposal.incident_id)
    text = (
        f"Proposal #{proposal.number} approved by <@{user_id}> ({count}/{proposal.approvals_required}, "
        f"sha256 {proposal.sql_sha256[:12]})"
    )
    data = {"proposal": proposal.number, "sql_sha256": proposal.sql_sha256, "approvals": count}
    session.add(
        timeline_entry(incident, EntryKind.APPROVAL, text, now, data, source=EntrySource.REACTION, user_id=user_id)
    )
    if count < proposal.approvals_required:
        return Decision(Verdict.COUNTED, view(session, proposal))
    proposal.status, proposal.decided_at = ProposalStatus.APPROVED, now
    session.flush()
    return Decision(Verdict.EXECUTE, view(session, proposal))


def _revoke(session: Session, proposal: Proposal, user_id: str, now: datetime) -> Decision:
    approval = session.get(ProposalApproval, (proposal.id, user_id))
    if approval is None:
        return Decision(Verdict.IGNORED, view(session, proposal))
    session.delete(approval)
    session.flush()
    incident = session.get_one(Incident, proposal.incident_id)
    count = len(standing_approvers(session, proposal))
    text = f"Proposal #{proposal.number}: <@{user_id}> withdrew their approval ({count}/{proposal.approvals_required})"
    data = {"proposal": proposal.number, "revoked": True, "approvals": count}
    session.add(
        timeline_entry(incident, EntryKind.APPROVAL, text, now, data, source=EntrySource.REACTION, user_id=user_id)
    )
    return Decision(Verdict.REVOKED, view(session, proposal))


def _reject(session: Session, proposal: Proposal, user_id: str, now: datetime) -> Decision:
    proposal.status, proposal.decided_at = ProposalStatus.REJECTED, now
    incident = session.get_one(Incident, proposal.incident_id)
    text = f"Proposal #{proposal.number} rejected by <@{user_id}>"
    data = {"proposal": proposal.number, "status": ProposalStatus.REJECTED}
    session.add(
        timeline_entry(incident, EntryKind.PROPOSAL, text, now, data, source=EntrySource.REACTION, user_id=user_id)
    )
    session.flush()
    return Decision(Verdict.REJECTED, view(session, proposal))
