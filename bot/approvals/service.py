"""`ProposalService`: the one object callers hold for proposals; SQL that writes reaches a target only through it.

A proposal is SQL aimed at one production target, bound to the SHA-256 of its exact text. Its lifecycle is
`proposed -> approved -> executing -> executed | failed`, and from `proposed` also rejected, expired or superseded.
Each method delegates to the module that owns the step: `propose`, `decisions` (one store transaction per decision),
`execution` (exactly once, xid stored before COMMIT, `reconcile`), `sweeps` (expiry, reminders), `views` (reads).

No Slack here: callers pass user ids, channel ids and message timestamps, and render the plain results.
"""

from datetime import datetime, timedelta
from typing import Any

from bot.approvals import decisions, execution, propose, sweeps, views
from bot.approvals.context import Context
from bot.approvals.policy import eligible_users
from bot.approvals.views import Decision, ProposalView, Proposed
from bot.postmortem.model import ProposalSummary
from bot.store.models import AuditLog


class ProposalService(Context):
    """Built with the store, the targets, the policy, and optionally a clock and Slack user-group lookup."""

    def eligible_users(self) -> list[str]:
        return eligible_users(self.policy, self.group_members)

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
        return propose.propose(
            self,
            channel_id,
            target_name,
            sql_text,
            proposer_id,
            proposer_name=proposer_name,
            kind=kind,
            summary=summary,
            plan=plan,
        )

    def attach_message(self, proposal_id: int, message_ts: str) -> None:
        propose.attach_message(self.store, proposal_id, message_ts)

    def get(self, proposal_id: int) -> ProposalView:
        return views.get(self.store, proposal_id)

    def find_by_message(self, channel_id: str, message_ts: str) -> ProposalView | None:
        return views.find_by_message(self.store, channel_id, message_ts)

    def in_incident(self, incident_id: int) -> list[ProposalView]:
        return views.in_incident(self.store, incident_id)

    def summaries(self, incident_id: int) -> list[ProposalSummary]:
        return views.summaries(self.store, incident_id)

    def audit(self, proposal_id: int | None = None) -> list[AuditLog]:
        return views.audit(self.store, proposal_id)

    def approve(self, proposal_id: int, user_id: str, *, event_id: str | None = None) -> Decision:
        return decisions.approve(self, proposal_id, user_id, event_id=event_id)

    def revoke(self, proposal_id: int, user_id: str, *, event_id: str | None = None) -> Decision:
        return decisions.revoke(self, proposal_id, user_id, event_id=event_id)

    def reject(self, proposal_id: int, user_id: str, *, event_id: str | None = None) -> Decision:
        return decisions.reject(self, proposal_id, user_id, event_id=event_id)

    def claim_execution(self, proposal_id: int) -> bool:
        return execution.claim_execution(self, proposal_id)

    def execute(self, proposal_id: int) -> ProposalView:
        return execution.execute(self, proposal_id)

    def record_verification(self, proposal_id: int, figures: dict[str, Any], text: str) -> None:
        execution.record_verification(self, proposal_id, figures, text)

    def reconcile(self, *, stale_after: timedelta = timedelta(minutes=10)) -> list[ProposalView]:
        return execution.reconcile(self, stale_after=stale_after)

    def approved_unclaimed(self) -> list[int]:
        return execution.approved_unclaimed(self.store)

    def expire_due(self, now: datetime | None = None) -> list[ProposalView]:
        return sweeps.expire_due(self, now)

    def remind_due(self, now: datetime | None = None) -> list[ProposalView]:
        return sweeps.remind_due(self, now)

    def release_reminder(self, proposal_id: int) -> None:
        sweeps.release_reminder(self.store, proposal_id)
