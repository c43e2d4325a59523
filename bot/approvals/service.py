"""Proposals and their approvals (DESIGN.md §2, invariants 1–3): SQL that writes reaches a target only through here.

A proposal is SQL aimed at one production target, bound to the SHA-256 of its exact text. Its lifecycle is
`proposed -> approved -> executing -> executed | failed`, and from `proposed` also rejected, expired or superseded.

Exactly once, across redeliveries and bot processes sharing one store:
- every approval, revocation and rejection runs in one store transaction that first claims the Slack event id and
  then locks the proposal row (`SELECT … FOR UPDATE` on Postgres; SQLite serialises writers);
- reaching the threshold moves `proposed -> approved` under that lock, and the move `approved -> executing` is a
  conditional UPDATE whose rowcount says which caller executes. Only that caller runs the SQL.
- the target's transaction id is written to the store before COMMIT (`on_xid`), so `reconcile()` can ask the target
  what became of an execution whose process died, instead of running it again.

No Slack here: callers pass user ids, channel ids and message timestamps, and render the plain results.
"""

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from bot.errors import NotFoundError, UsageError
from bot.postmortem.build import ProposalSummary
from bot.scribe.entries import new_entry
from bot.scribe.incidents import require_incident
from bot.scribe.timeline import DuplicateEvent, claim_event
from bot.store.models import (
    AuditLog,
    EntryKind,
    EntrySource,
    Incident,
    Proposal,
    ProposalApproval,
    ProposalStatus,
)
from bot.store.session import Store
from bot.store.types import utcnow
from restore import apply
from restore.errors import RewindError, TargetError
from restore.targets import Target, TargetRole, mask_dsn

log = logging.getLogger("rewind.approvals")

Clock = Callable[[], datetime]
PENDING = (ProposalStatus.PROPOSED,)
FINAL = (
    ProposalStatus.EXECUTED,
    ProposalStatus.FAILED,
    ProposalStatus.REJECTED,
    ProposalStatus.EXPIRED,
    ProposalStatus.SUPERSEDED,
)


def sql_sha256(sql_text: str) -> str:
    """The hash a proposal and its approvals are bound to: of the exact text, byte for byte (UTF-8)."""
    return hashlib.sha256(sql_text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Policy:
    """Who may approve: N distinct users, from `approvers` if set (else anyone), never the proposer."""

    approvals_required: int = 2
    approvers: tuple[str, ...] = ()
    approver_group: str | None = None  # a Slack user group; its members at proposal time may approve too
    ttl: timedelta = timedelta(minutes=30)
    statement_timeout_s: float = 30
    lock_timeout_s: float = 5

    def who(self) -> str:
        if self.approvers:
            return "one of " + ", ".join(f"<@{u}>" for u in self.approvers) + " (not the proposer)"
        return "anyone in the channel but the proposer"


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


class ProposalService:
    def __init__(
        self,
        store: Store,
        targets: Callable[[], dict[str, Target]],
        policy: Policy,
        clock: Clock = utcnow,
        group_members: Callable[[str], Sequence[str]] | None = None,
    ) -> None:
        self.store = store
        self.targets = targets
        self.policy = policy
        self.clock = clock
        self.group_members = group_members  # the composition root wires Slack's usergroups.users.list

    def eligible_users(self) -> list[str]:
        """Who may approve a proposal made now: the configured users plus the group's current members.

        An empty list means anyone but the proposer, so a configured group that yields nobody is an error,
        never a silent widening to everyone."""
        users = list(self.policy.approvers)
        group = self.policy.approver_group
        if group:
            if self.group_members is None:
                raise UsageError(f"REWIND_APPROVER_GROUP {group} is set but Slack user groups can't be read here.")
            members = [u for u in self.group_members(group) if u not in users]
            if not users and not members:
                raise UsageError(
                    f"User group {group} has no members, so nobody could approve. Add people to it, or set "
                    "REWIND_APPROVERS."
                )
            users += members
        return users

    # --- proposing ------------------------------------------------------------------------------------------------

    def target(self, name: str) -> Target:
        """A configured production target by name (proposals only ever aim at production)."""
        targets = self.targets()
        target = targets.get(name)
        if target is None:
            known = ", ".join(f"{t.name} ({t.role.value})" for t in targets.values()) or "none (set REWIND_TARGETS)"
            raise TargetError(f"Unknown target {name!r}. Configured targets: {known}.")
        if target.role is not TargetRole.PRODUCTION:
            raise TargetError(
                f"{target.name} is a {target.role.value} target: it is read-only. Proposals aim at a production "
                f"target; ask {target.name} questions with `/inc query {target.name} <SELECT …>`."
            )
        return target

    def propose(
        self,
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
        target = self.target(target_name)
        with self.store.transaction() as session:
            require_incident(session, channel_id)  # before touching the target
        eligible = self.eligible_users()
        dry = self._dry_run(target, sql_text)
        now = self.clock()
        digest = sql_sha256(sql_text)
        with self.store.transaction() as session:
            incident = require_incident(session, channel_id, lock=True)
            superseded: list[Proposal] = []
            if dry["ok"]:
                superseded = list(
                    session.scalars(
                        select(Proposal)
                        .where(Proposal.incident_id == incident.id, Proposal.status.in_(PENDING))
                        .with_for_update()
                    )
                )
                for old in superseded:
                    old.status, old.decided_at = ProposalStatus.SUPERSEDED, now
            number = (
                session.scalar(select(func.max(Proposal.number)).where(Proposal.incident_id == incident.id)) or 0
            ) + 1
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
                approvals_required=self.policy.approvals_required,
                eligible={"users": eligible},
                dry_run=dry,
                plan=plan,
                channel_id=channel_id,
                created_at=now,
                remind_at=now + self.policy.ttl / 2,
                expires_at=now + self.policy.ttl,
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
                new_entry(
                    incident,
                    EntryKind.PROPOSAL,
                    author=proposer_id,
                    author_name=proposer_name,
                    text=text,
                    occurred_at=now,
                    recorded_at=now,
                    data=data,
                )
            )
            for old in superseded:
                session.add(
                    _system_entry(
                        incident,
                        EntryKind.PROPOSAL,
                        f"Proposal #{old.number} superseded by #{number}",
                        now,
                        {"proposal": old.number, "status": ProposalStatus.SUPERSEDED},
                    )
                )
            session.flush()
            return Proposed(_view(session, proposal), [_view(session, old) for old in superseded])

    def _dry_run(self, target: Target, sql_text: str) -> dict[str, Any]:
        timeouts = {
            "statement_timeout_s": self.policy.statement_timeout_s,
            "lock_timeout_s": self.policy.lock_timeout_s,
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

    def attach_message(self, proposal_id: int, message_ts: str) -> None:
        with self.store.transaction() as session:
            session.execute(update(Proposal).where(Proposal.id == proposal_id).values(message_ts=message_ts))

    # --- reading ----------------------------------------------------------------------------------------------------

    def get(self, proposal_id: int) -> ProposalView:
        with self.store.transaction() as session:
            proposal = session.get(Proposal, proposal_id)
            if proposal is None:
                raise NotFoundError(f"There is no proposal {proposal_id}.")
            return _view(session, proposal)

    def find_by_message(self, channel_id: str, message_ts: str) -> ProposalView | None:
        with self.store.transaction() as session:
            proposal = session.scalars(
                select(Proposal).where(Proposal.channel_id == channel_id, Proposal.message_ts == message_ts)
            ).one_or_none()
            return _view(session, proposal) if proposal else None

    def in_incident(self, incident_id: int) -> list[ProposalView]:
        with self.store.transaction() as session:
            rows = session.scalars(
                select(Proposal).where(Proposal.incident_id == incident_id).order_by(Proposal.number)
            )
            return [_view(session, p) for p in rows]

    def summaries(self, incident_id: int) -> list[ProposalSummary]:
        """Every proposal of an incident for the post-mortem's Restore operations section."""
        return [_summary(p) for p in self.in_incident(incident_id)]

    def audit(self, proposal_id: int | None = None) -> list[AuditLog]:
        with self.store.transaction() as session:
            query = select(AuditLog).order_by(AuditLog.id)
            if proposal_id is not None:
                query = query.where(AuditLog.proposal_id == proposal_id)
            return list(session.scalars(query))

    # --- approvals --------------------------------------------------------------------------------------------------

    def approve(self, proposal_id: int, user_id: str, *, event_id: str | None = None) -> Decision:
        """Count `user_id`'s approval; when it reaches the threshold, claim the execution (see Verdict.EXECUTE)."""
        decision = self._decide(proposal_id, user_id, event_id, self._approve)
        if decision.verdict is Verdict.EXECUTE and decision.proposal is not None:
            if not self.claim_execution(decision.proposal.id):
                return Decision(Verdict.COUNTED, self.get(decision.proposal.id))
            return Decision(Verdict.EXECUTE, self.get(decision.proposal.id))
        return decision

    def revoke(self, proposal_id: int, user_id: str, *, event_id: str | None = None) -> Decision:
        return self._decide(proposal_id, user_id, event_id, self._revoke)

    def reject(self, proposal_id: int, user_id: str, *, event_id: str | None = None) -> Decision:
        return self._decide(proposal_id, user_id, event_id, self._reject)

    def _decide(
        self,
        proposal_id: int,
        user_id: str,
        event_id: str | None,
        act: Callable[[Session, Proposal, str, datetime], Decision],
    ) -> Decision:
        now = self.clock()
        try:
            with self.store.transaction() as session:
                claim_event(session, event_id)
                proposal = session.scalars(
                    select(Proposal).where(Proposal.id == proposal_id).with_for_update()
                ).one_or_none()
                if proposal is None:
                    return Decision(Verdict.IGNORED)
                refusal = self._refusal(proposal, user_id)
                if refusal is not None:
                    return Decision(refusal[0], _view(session, proposal), refusal[1])
                return act(session, proposal, user_id, now)
        except DuplicateEvent:
            return Decision(Verdict.DUPLICATE)

    def _refusal(self, proposal: Proposal, user_id: str) -> tuple[Verdict, str] | None:
        label = f"Proposal #{proposal.number}"
        if user_id == proposal.proposer_id:
            return Verdict.PROPOSER, (
                f"{label} is yours: a proposer's approval or rejection never counts. "
                f"It needs {proposal.approvals_required} approvals from {self._who(proposal)}."
            )
        eligible = (proposal.eligible or {}).get("users") or []
        if eligible and user_id not in eligible:
            return Verdict.NOT_ELIGIBLE, (
                f"You are not an approver for {label}, so your reaction counts for nothing. "
                f"It needs approvals from {self._who(proposal)} (REWIND_APPROVERS)."
            )
        if proposal.status not in PENDING:
            return Verdict.NOT_PENDING, f"{label} is {proposal.status}; there is nothing to approve or reject."
        return None

    def _who(self, proposal: Proposal) -> str:
        users = (proposal.eligible or {}).get("users") or []
        return Policy(approvers=tuple(users)).who()

    def _approve(self, session: Session, proposal: Proposal, user_id: str, now: datetime) -> Decision:
        if session.get(ProposalApproval, (proposal.id, user_id)) is not None:
            return Decision(Verdict.ALREADY, _view(session, proposal), "Your approval is already counted.")
        session.add(ProposalApproval(proposal_id=proposal.id, user_id=user_id, sql_sha256=proposal.sql_sha256))
        session.flush()
        count = len(_approvers(session, proposal))
        incident = session.get_one(Incident, proposal.incident_id)
        text = (
            f"Proposal #{proposal.number} approved by <@{user_id}> ({count}/{proposal.approvals_required}, "
            f"sha256 {proposal.sql_sha256[:12]})"
        )
        data = {"proposal": proposal.number, "sql_sha256": proposal.sql_sha256, "approvals": count}
        session.add(_entry(incident, EntryKind.APPROVAL, text, user_id, now, data, EntrySource.REACTION))
        if count < proposal.approvals_required:
            return Decision(Verdict.COUNTED, _view(session, proposal))
        proposal.status, proposal.decided_at = ProposalStatus.APPROVED, now
        session.flush()
        return Decision(Verdict.EXECUTE, _view(session, proposal))

    def _revoke(self, session: Session, proposal: Proposal, user_id: str, now: datetime) -> Decision:
        approval = session.get(ProposalApproval, (proposal.id, user_id))
        if approval is None:
            return Decision(Verdict.IGNORED, _view(session, proposal))
        session.delete(approval)
        session.flush()
        incident = session.get_one(Incident, proposal.incident_id)
        count = len(_approvers(session, proposal))
        text = (
            f"Proposal #{proposal.number}: <@{user_id}> withdrew their approval ({count}/{proposal.approvals_required})"
        )
        data = {"proposal": proposal.number, "revoked": True, "approvals": count}
        session.add(_entry(incident, EntryKind.APPROVAL, text, user_id, now, data, EntrySource.REACTION))
        return Decision(Verdict.REVOKED, _view(session, proposal))

    def _reject(self, session: Session, proposal: Proposal, user_id: str, now: datetime) -> Decision:
        proposal.status, proposal.decided_at = ProposalStatus.REJECTED, now
        incident = session.get_one(Incident, proposal.incident_id)
        text = f"Proposal #{proposal.number} rejected by <@{user_id}>"
        data = {"proposal": proposal.number, "status": ProposalStatus.REJECTED}
        session.add(_entry(incident, EntryKind.PROPOSAL, text, user_id, now, data, EntrySource.REACTION))
        session.flush()
        return Decision(Verdict.REJECTED, _view(session, proposal))

    # --- execution --------------------------------------------------------------------------------------------------

    def claim_execution(self, proposal_id: int) -> bool:
        """`approved -> executing` as a conditional UPDATE: exactly one caller, in any process, gets rowcount 1."""
        with self.store.transaction() as session:
            result = session.execute(
                update(Proposal)
                .where(Proposal.id == proposal_id, Proposal.status == ProposalStatus.APPROVED)
                .values(status=ProposalStatus.EXECUTING, executing_since=self.clock()),
                execution_options={"synchronize_session": False},
            )
            return result.rowcount == 1  # type: ignore[attr-defined]

    def execute(self, proposal_id: int) -> ProposalView:
        """Run a proposal this caller claimed: one transaction, timeouts set, counts checked against the dry run,
        the xid stored before COMMIT. Records the outcome (proposal, timeline, audit log) and returns it."""
        with self.store.transaction() as session:
            proposal = session.get_one(Proposal, proposal_id)
            if proposal.status != ProposalStatus.EXECUTING or proposal.xid is not None or proposal.result is not None:
                raise UsageError(f"Proposal #{proposal.number} is {proposal.status}; it runs only once.")
            sql_text, target_name = proposal.sql_text, proposal.target
            expected = (proposal.dry_run or {}).get("counts")
            if sql_sha256(sql_text) != proposal.sql_sha256:  # the store was tampered with: never run it
                raise UsageError(f"Proposal #{proposal.number}'s SQL no longer matches its hash; it will not run.")
        started = self.clock()
        try:
            target = self.target(target_name)
            result = apply.execute(
                target,
                sql_text,
                expected_counts=expected,
                on_xid=lambda xid: self._record_xid(proposal_id, xid),
                statement_timeout_s=self.policy.statement_timeout_s,
                lock_timeout_s=self.policy.lock_timeout_s,
            )
        except RewindError as exc:
            return self._finish(proposal_id, ok=False, error=mask_dsn(str(exc)), started=started)
        except Exception as exc:  # a driver or network failure: the xid (if stored) tells reconcile() the truth
            log.exception("proposal %s: execution interrupted", proposal_id)
            return self._finish(proposal_id, ok=False, error=f"interrupted: {mask_dsn(str(exc))}", started=started)
        return self._finish(
            proposal_id, ok=True, counts=result.counts, seconds=result.seconds, started=started, xid=result.xid
        )

    def _record_xid(self, proposal_id: int, xid: int) -> None:
        with self.store.transaction() as session:
            session.execute(
                update(Proposal)
                .where(Proposal.id == proposal_id, Proposal.status == ProposalStatus.EXECUTING)
                .values(xid=xid),
                execution_options={"synchronize_session": False},
            )

    def _finish(
        self,
        proposal_id: int,
        *,
        ok: bool,
        started: datetime,
        counts: Sequence[int] | None = None,
        seconds: float | None = None,
        error: str | None = None,
        xid: int | None = None,
        how: str = "",
    ) -> ProposalView:
        now = self.clock()
        with self.store.transaction() as session:
            proposal = session.scalars(select(Proposal).where(Proposal.id == proposal_id).with_for_update()).one()
            if proposal.status != ProposalStatus.EXECUTING:  # someone else (reconcile) already recorded it
                return _view(session, proposal)
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
            approvers = _approvers(session, proposal)
            session.add(
                AuditLog(
                    at=now,
                    incident_id=proposal.incident_id,
                    proposal_id=proposal.id,
                    sql_sha256=proposal.sql_sha256,
                    target=proposal.target,
                    proposer_id=proposal.proposer_id,
                    approvers={"users": approvers},
                    row_counts={"counts": list(counts or []), "rows_affected": rows} if counts is not None else None,
                    duration_s=duration,
                    outcome=status.value,
                    detail=" ".join(part for part in (error, how) if part) or None,
                )
            )
            incident = session.get_one(Incident, proposal.incident_id)
            if ok:
                text = f"Proposal #{proposal.number} executed on {proposal.target}: {rows} rows in {duration:.2f}s"
            else:
                text = f"Proposal #{proposal.number} failed on {proposal.target}: {error}"
            text += f" {how}".rstrip() if how else ""
            data = {"proposal": proposal.number, "sql_sha256": proposal.sql_sha256, "status": status.value}
            if rows is not None:
                data["rows_affected"] = rows
            session.add(_system_entry(incident, EntryKind.EXECUTION, text, now, data))
            session.flush()
            return _view(session, proposal)

    def record_verification(self, proposal_id: int, figures: dict[str, Any], text: str) -> None:
        """The diff run after a generated plan executed: what is still left to restore."""
        now = self.clock()
        with self.store.transaction() as session:
            proposal = session.get_one(Proposal, proposal_id)
            proposal.result = {**(proposal.result or {}), "verification": figures}
            incident = session.get_one(Incident, proposal.incident_id)
            session.add(_system_entry(incident, EntryKind.RESTORE, text, now, figures))

    # --- crash recovery ------------------------------------------------------------------------------------------

    def reconcile(self, *, stale_after: timedelta = timedelta(minutes=10)) -> list[ProposalView]:
        """Resolve executions a dead process left behind, from the target's own record; never re-execute.

        - `executing` with an xid: `pg_xact_status(xid)` says committed (-> executed) or aborted (-> failed);
          in progress means its process is still at work: left alone.
        - `executing` without an xid, older than `stale_after`: COMMIT comes after the xid is stored, so nothing
          committed; the target rolled the transaction back when the connection dropped (-> failed).
        Returns the proposals it resolved (for reporting)."""
        now = self.clock()
        with self.store.transaction() as session:
            stuck = list(session.scalars(select(Proposal).where(Proposal.status == ProposalStatus.EXECUTING)))
            stuck_ids = [(p.id, p.xid, p.target, p.executing_since, p.dry_run) for p in stuck]
        resolved = []
        for proposal_id, xid, target_name, since, dry in stuck_ids:
            started = since or now
            if xid is None:
                if since is not None and now - since < stale_after:
                    continue
                how = "(reconciled after a restart: the bot stopped before COMMIT, so nothing was committed)"
                resolved.append(self._finish(proposal_id, ok=False, started=started, error="interrupted", how=how))
                continue
            try:
                status = apply.check_xact(self.target(target_name), xid)
            except RewindError as exc:
                log.warning("proposal %s: cannot check xid %s yet: %s", proposal_id, xid, mask_dsn(str(exc)))
                continue
            if status == "committed":
                how = f"(reconciled after a restart: pg_xact_status({xid}) = committed)"
                counts = (dry or {}).get("counts")  # COMMIT is reached only when the counts equal the dry run's
                resolved.append(self._finish(proposal_id, ok=True, started=started, counts=counts, how=how, xid=xid))
            elif status == "aborted":
                how = f"(reconciled after a restart: pg_xact_status({xid}) = aborted; nothing was changed)"
                resolved.append(self._finish(proposal_id, ok=False, started=started, error="rolled back", how=how))
            elif status is None:
                log.warning("proposal %s: the target no longer knows xid %s; check it by hand", proposal_id, xid)
        return resolved

    def approved_unclaimed(self) -> list[int]:
        """Approved proposals whose executing process died before claiming them: still safe to run once."""
        with self.store.transaction() as session:
            return list(session.scalars(select(Proposal.id).where(Proposal.status == ProposalStatus.APPROVED)))

    # --- expiry and reminders ----------------------------------------------------------------------------------------

    def expire_due(self, now: datetime | None = None) -> list[ProposalView]:
        """Proposals past their TTL become `expired`; each is claimed by a conditional UPDATE (one process wins)."""
        now = now or self.clock()
        due = (Proposal.status == ProposalStatus.PROPOSED) & (Proposal.expires_at <= now)
        expired = []
        for proposal_id in self._candidates(due):
            with self.store.transaction() as session:
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
                session.add(_system_entry(incident, EntryKind.PROPOSAL, text, now, data))
                expired.append(_view(session, proposal))
        return expired

    def remind_due(self, now: datetime | None = None) -> list[ProposalView]:
        """Pending proposals halfway to expiry, not yet reminded: claimed by stamping `reminded_at`."""
        now = now or self.clock()
        due = (
            (Proposal.status == ProposalStatus.PROPOSED)
            & (Proposal.remind_at <= now)
            & (Proposal.expires_at > now)
            & Proposal.reminded_at.is_(None)
        )
        reminded = []
        for proposal_id in self._candidates(due):
            with self.store.transaction() as session:
                result = session.execute(
                    update(Proposal).where(Proposal.id == proposal_id, due).values(reminded_at=now),
                    execution_options={"synchronize_session": False},
                )
                if result.rowcount == 1:  # type: ignore[attr-defined]
                    reminded.append(_view(session, session.get_one(Proposal, proposal_id)))
        return reminded

    def release_reminder(self, proposal_id: int) -> None:
        """Posting the reminder failed: let a later run try again."""
        with self.store.transaction() as session:
            session.execute(update(Proposal).where(Proposal.id == proposal_id).values(reminded_at=None))

    def _candidates(self, due: Any) -> list[int]:
        with self.store.transaction() as session:
            query = select(Proposal.id).where(due).order_by(Proposal.id)
            if self.store.is_postgres:  # rows another process is claiming right now are skipped, not waited for
                query = query.with_for_update(skip_locked=True)
            return list(session.scalars(query))


# --- helpers --------------------------------------------------------------------------------------------------------


def _approvers(session: Session, proposal: Proposal) -> list[str]:
    """Standing approvals on this proposal's exact hash, from eligible users other than the proposer."""
    users = session.scalars(
        select(ProposalApproval.user_id)
        .where(ProposalApproval.proposal_id == proposal.id, ProposalApproval.sql_sha256 == proposal.sql_sha256)
        .order_by(ProposalApproval.approved_at, ProposalApproval.user_id)
    )
    eligible = (proposal.eligible or {}).get("users") or []
    return [u for u in users if u != proposal.proposer_id and (not eligible or u in eligible)]


def _view(session: Session, proposal: Proposal) -> ProposalView:
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
        approvers=_approvers(session, proposal),
        dry_run=dict(proposal.dry_run or {}),
        result=dict(proposal.result) if proposal.result else None,
        plan=dict(proposal.plan) if proposal.plan else None,
        created_at=proposal.created_at,
        expires_at=proposal.expires_at,
        xid=proposal.xid,
    )


def _summary(view: ProposalView) -> ProposalSummary:
    result = view.result or {}
    finished = view.status in (ProposalStatus.EXECUTED, ProposalStatus.FAILED) and "counts" in result
    return ProposalSummary(
        number=view.number,
        target=view.target,
        summary=view.summary,
        status=view.status,
        proposer=view.proposer_id,
        approvers=view.approvers,
        sql_sha256=view.sql_sha256,
        rows_affected=result.get("rows_affected") if finished else None,
        duration_s=result.get("seconds") if finished else None,
    )


def _summary_of(sql_text: str) -> str:
    first = " ".join(sql_text.split())
    return first[:80] + ("…" if len(first) > 80 else "")


def _entry(
    incident: Incident,
    kind: EntryKind,
    text: str,
    user_id: str,
    now: datetime,
    data: dict[str, Any],
    source: EntrySource,
) -> Any:
    return new_entry(
        incident, kind, author=user_id, text=text, occurred_at=now, recorded_at=now, source=source, data=data
    )


def _system_entry(incident: Incident, kind: EntryKind, text: str, now: datetime, data: dict[str, Any]) -> Any:
    return _entry(incident, kind, text, "rewind", now, data, EntrySource.SYSTEM)


__all__ = [
    "Decision",
    "Policy",
    "ProposalService",
    "ProposalView",
    "Proposed",
    "Verdict",
    "sql_sha256",
]
