"""Proposals as callers see them: plain values (`ProposalView`, `Decision`, `Verdict`, `Proposed`), built from the
store's rows, and the reads that return them. Approvers count only on the proposal's exact hash."""

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.errors import NotFoundError
from bot.postmortem.model import ProposalSummary
from bot.store.models import AuditLog, Proposal, ProposalApproval, ProposalStatus
from bot.store.session import Store

PENDING = (ProposalStatus.PROPOSED,)
COMMAND = "command"  # a script run asked for by `rewind exec --request`: its requester's process runs it, never the bot


@dataclass(frozen=True)
class ProposalView:
    """A proposal as it stood when read: plain values for rendering."""

    id: int
    number: int
    incident_id: int
    channel_id: str
    message_ts: str | None
    kind: str
    summary: str
    target: str
    sql_text: str
    sql_sha256: str
    status: str
    proposer_id: str
    approvals_required: int
    eligible: list[str]
    approvers: list[str]
    dry_run: dict[str, Any]
    result: dict[str, Any] | None
    plan: dict[str, Any] | None
    created_at: datetime
    expires_at: datetime
    xid: int | None

    @property
    def pending(self) -> bool:
        return self.status in PENDING

    @property
    def short_hash(self) -> str:
        return self.sql_sha256[:12]


class Verdict(StrEnum):
    COUNTED = "counted"  # an approval recorded; the threshold is not reached (or another caller executes)
    EXECUTE = "execute"  # the threshold is reached and this caller won the claim: it must call execute()
    APPROVED = "approved"  # the threshold is reached on a command: the requester's waiting process runs it
    ALREADY = "already"  # this user's approval was already counted
    REVOKED = "revoked"
    REJECTED = "rejected"
    PROPOSER = "proposer"  # the proposer's own reaction: counts for nothing
    NOT_ELIGIBLE = "not eligible"
    NOT_PENDING = "not pending"  # executed, failed, rejected, expired, superseded, or executing
    DUPLICATE = "duplicate"  # a redelivered event: already handled
    IGNORED = "ignored"  # not a proposal message, or nothing to revoke


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    proposal: ProposalView | None = None
    explanation: str = ""  # for the user who acted, when their action counted for nothing

    @property
    def changed(self) -> bool:
        return self.verdict in (Verdict.COUNTED, Verdict.EXECUTE, Verdict.REVOKED, Verdict.REJECTED)


@dataclass(frozen=True)
class Proposed:
    proposal: ProposalView
    superseded: list[ProposalView] = field(default_factory=list)


# --- from rows ------------------------------------------------------------------------------------------------------


def standing_approvers(session: Session, proposal: Proposal) -> list[str]:
    """Standing approvals on this proposal's exact hash, from eligible users other than the proposer."""
    users = session.scalars(
        select(ProposalApproval.user_id)
        .where(ProposalApproval.proposal_id == proposal.id, ProposalApproval.sql_sha256 == proposal.sql_sha256)
        .order_by(ProposalApproval.approved_at, ProposalApproval.user_id)
    )
    eligible = (proposal.eligible or {}).get("users") or []
    return [u for u in users if u != proposal.proposer_id and (not eligible or u in eligible)]


def view(session: Session, proposal: Proposal) -> ProposalView:
    return ProposalView(
        id=proposal.id,
        number=proposal.number,
        incident_id=proposal.incident_id,
        channel_id=proposal.channel_id,
        message_ts=proposal.message_ts,
        kind=proposal.kind,
        summary=proposal.summary,
        target=proposal.target,
        sql_text=proposal.sql_text,
        sql_sha256=proposal.sql_sha256,
        status=proposal.status,
        proposer_id=proposal.proposer_id,
        approvals_required=proposal.approvals_required,
        eligible=list((proposal.eligible or {}).get("users") or []),
        approvers=standing_approvers(session, proposal),
        dry_run=dict(proposal.dry_run or {}),
        result=dict(proposal.result) if proposal.result else None,
        plan=dict(proposal.plan) if proposal.plan else None,
        created_at=proposal.created_at,
        expires_at=proposal.expires_at,
        xid=proposal.xid,
    )


def summary(proposal: ProposalView) -> ProposalSummary:
    """The post-mortem's line for a proposal: row count and duration only once it ran."""
    result = proposal.result or {}
    finished = proposal.status in (ProposalStatus.EXECUTED, ProposalStatus.FAILED) and "counts" in result
    return ProposalSummary(
        number=proposal.number,
        target=proposal.target,
        summary=proposal.summary,
        status=proposal.status,
        proposer=proposal.proposer_id,
        approvers=proposal.approvers,
        sql_sha256=proposal.sql_sha256,
        rows_affected=result.get("rows_affected") if finished else None,
        duration_s=result.get("seconds") if finished else None,
    )


# --- reads ----------------------------------------------------------------------------------------------------------


def get(store: Store, proposal_id: int) -> ProposalView:
    with store.transaction() as session:
        proposal = session.get(Proposal, proposal_id)
        if proposal is None:
            raise NotFoundError(f"There is no proposal {proposal_id}.")
        return view(session, proposal)


def find_by_message(store: Store, channel_id: str, message_ts: str) -> ProposalView | None:
    with store.transaction() as session:
        proposal = session.scalars(
            select(Proposal).where(Proposal.channel_id == channel_id, Proposal.message_ts == message_ts)
        ).one_or_none()
        return view(session, proposal) if proposal else None


def in_incident(store: Store, incident_id: int) -> list[ProposalView]:
    with store.transaction() as session:
        rows = session.scalars(select(Proposal).where(Proposal.incident_id == incident_id).order_by(Proposal.number))
        return [view(session, p) for p in rows]


def summaries(store: Store, incident_id: int) -> list[ProposalSummary]:
    """Every proposal of an incident for the post-mortem's Restore operations section."""
    return [summary(p) for p in in_incident(store, incident_id)]


def audit(store: Store, proposal_id: int | None = None) -> list[AuditLog]:
    with store.transaction() as session:
        query = select(AuditLog).order_by(AuditLog.id)
        if proposal_id is not None:
            query = query.where(AuditLog.proposal_id == proposal_id)
        return list(session.scalars(query))
