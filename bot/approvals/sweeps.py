"""The periodic sweeps over pending proposals: expiry at the TTL and one reminder halfway. Each row is claimed by a
conditional UPDATE, so when several bot processes sweep at once exactly one acts on it."""

from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from bot.approvals.context import Context, timeline_entry
from bot.approvals.views import ProposalView, view
from bot.store.models import EntryKind, Incident, Proposal, ProposalStatus
from bot.store.session import Store


def expire_due(ctx: Context, now: datetime | None = None) -> list[ProposalView]:
    """Proposals past their TTL become `expired`; each is claimed by a conditional UPDATE (one process wins)."""
    now = now or ctx.clock()
    due = (Proposal.status == ProposalStatus.PROPOSED) & (Proposal.expires_at <= now)
    expired = []
    for proposal_id in _candidates(ctx.store, due):
        with ctx.store.transaction() as session:
            result = session.execute(
                update(Proposal)
                .where(Proposal.id == proposal_id, due)
                .values(status=ProposalStatus.EXPIRED, decided_at=now),
                execution_options={"synchronize_session": False},
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                continue
            proposal = session.get_one(Proposal, proposal_id)
            session.refresh(proposal)
            incident = session.get_one(Incident, proposal.incident_id)
            text = f"Proposal #{proposal.number} expired unapproved"
            data = {"proposal": proposal.number, "status": ProposalStatus.EXPIRED}
            session.add(timeline_entry(incident, EntryKind.PROPOSAL, text, now, data))
            expired.append(view(session, proposal))
    return expired


def remind_due(ctx: Context, now: datetime | None = None) -> list[ProposalView]:
    """Pending proposals halfway to expiry, not yet reminded: claimed by stamping `reminded_at`."""
    now = now or ctx.clock()
    due = (
        (Proposal.status == ProposalStatus.PROPOSED)
        & (Proposal.remind_at <= now)
        & (Proposal.expires_at > now)
        & Proposal.reminded_at.is_(None)
    )
    reminded = []
    for proposal_id in _candidates(ctx.store, due):
        with ctx.store.transaction() as session:
            result = session.execute(
                update(Proposal).where(Proposal.id == proposal_id, due).values(reminded_at=now),
                execution_options={"synchronize_session": False},
            )
            if result.rowcount == 1:  # type: ignore[attr-defined]
                reminded.append(view(session, session.get_one(Proposal, proposal_id)))
    return reminded


def release_reminder(store: Store, proposal_id: int) -> None:
    """Posting the reminder failed: let a later run try again."""
    with store.transaction() as session:
        session.execute(update(Proposal).where(Proposal.id == proposal_id).values(reminded_at=None))


def _candidates(store: Store, due: Any) -> list[int]:
    with store.transaction() as session:
        query = select(Proposal.id).where(due).order_by(Proposal.id)
        if store.is_postgres:  # rows another process is claiming right now are skipped, not waited for
            query = query.with_for_update(skip_locked=True)
        return list(session.scalars(query))
