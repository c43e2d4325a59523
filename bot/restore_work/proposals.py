"""The proposal flow of restore work: propose (with its dry run), publish, execute, report, verify; the sweeps.

`bot.approvals.service` decides (dry runs, approvals, exactly-once execution); this flow runs its slow steps in the
background and tells the channel through the `Notifier`, in plain values.
"""

import logging
from collections.abc import Sequence
from concurrent.futures import Future

from bot.approvals.service import ProposalService
from bot.approvals.views import ProposalView, Verdict
from bot.errors import ConfigError
from bot.restore_work.background import Background
from bot.restore_work.notifier import Verification
from bot.restore_work.targets import RestoreTargets
from bot.scribe.incidents import require_incident
from bot.store.session import Store
from restore.errors import RewindError
from restore.keys import ROOTS_LIMIT, deleted_roots
from restore.targets import mask_dsn

log = logging.getLogger("rewind.restore")


class ProposalFlow:
    def __init__(
        self, store: Store, approvals: ProposalService, targets: RestoreTargets, background: Background
    ) -> None:
        self.store = store
        self.approvals = approvals
        self.targets = targets
        self.background = background

    def propose(self, channel: str, user: str, user_name: str | None, target: str, sql_text: str) -> Future[None]:
        """Check the incident and the target at once, then dry-run and post the proposal in the background."""
        with self.store.transaction() as session:
            require_incident(session, channel)
        name = self.approvals.target(target).name
        return self.background.submit(self._propose, channel, user, user_name, name, sql_text)

    def _propose(self, channel: str, user: str, user_name: str | None, target: str, sql_text: str) -> None:
        try:
            self.propose_now(channel, user, user_name, target, sql_text)
        except RewindError as exc:
            self.background.notify.refused(channel, user, mask_dsn(str(exc)))

    def propose_now(
        self,
        channel: str,
        user: str,
        user_name: str | None,
        target: str,
        sql_text: str,
        *,
        summary: str | None = None,
    ) -> ProposalView:
        """Dry-run, record and post the proposal in the caller's thread; it then waits for approvals like any other.

        Raises the `RewindError` that refused it (no incident, not a production target, a policy nobody can meet)."""
        if self.background.notifier is None:  # checked first: a proposal nobody can see would only wait to expire
            raise ConfigError(
                "Proposals are posted in Slack for approval, and this process has no Slack connection: set "
                "SLACK_BOT_TOKEN (and REWIND_SLACK_API_URL for a stand-in)."
            )
        proposed = self.approvals.propose(channel, target, sql_text, user, proposer_name=user_name, summary=summary)
        self.publish(proposed.proposal, proposed.superseded)
        return self.approvals.get(proposed.proposal.id)

    def publish(self, proposal: ProposalView, superseded: Sequence[ProposalView] = ()) -> None:
        """Post the proposal message (and show the ones it superseded as such)."""
        notifier = self.background.notify
        ts = notifier.show_proposal(proposal)
        if ts and not proposal.message_ts:
            self.approvals.attach_message(proposal.id, ts)
        for old in superseded:
            notifier.show_proposal(old)
            notifier.superseded(old, proposal)

    def execute(self, proposal_id: int) -> ProposalView:
        """Run a proposal this process claimed (Verdict.EXECUTE), then report in its thread."""
        self.background.notify.executing(self.approvals.get(proposal_id))
        done = self.approvals.execute(proposal_id)
        self.report(done)
        if done.status == "executed" and done.kind == "plan" and done.plan:
            self.verify(done)
        return done

    def report(self, view: ProposalView) -> None:
        notifier = self.background.notify
        notifier.show_proposal(view)
        notifier.executed(view)

    def verify(self, view: ProposalView) -> None:
        """After a generated plan ran: how many of the deleted rows are still missing (normally none)."""
        plan = view.plan or {}
        table = str(plan["table"])
        try:
            sides = self.targets.sides(view.channel_id)
            left = len(deleted_roots(sides.backup, sides.live, table, plan.get("where"), limit=ROOTS_LIMIT))
        except RewindError as exc:
            self.background.notify.verified(view, Verification(table, error=mask_dsn(str(exc))))
            return
        figures = {"operation": "verify", "table": table, "proposal": view.number, "left_to_restore": left}
        text = f"Verification diff of {table} after proposal #{view.number}: {left:,} deleted rows left to restore"
        self.approvals.record_verification(view.id, figures, text)
        self.background.notify.verified(view, Verification(table, left_to_restore=left))

    def decided(self, verdict: Verdict, proposal: ProposalView) -> None:
        """After a counted approval, a revocation or a rejection: refresh the message; run it if ours to run."""
        if verdict is Verdict.EXECUTE:
            self.background.submit(self.execute, proposal.id)
            return
        self.background.notify.show_proposal(proposal)

    def run_due(self) -> None:
        """Expire proposals past their TTL and remind approvers halfway (the scheduler calls this every minute)."""
        notifier = self.background.notify
        for view in self.approvals.expire_due():
            notifier.show_proposal(view)
            notifier.expired(view)
        for view in self.approvals.remind_due():
            try:
                notifier.remind(view)
            except Exception:
                log.exception("reminder for proposal %s not posted; it will be retried", view.id)
                self.approvals.release_reminder(view.id)

    def reconcile(self) -> list[ProposalView]:
        """At start-up: resolve executions a dead process left `executing`, report them; run approved leftovers."""
        resolved = self.approvals.reconcile()
        for view in resolved:
            if self.background.notifier is not None:
                self.report(view)
        for proposal_id in self.approvals.approved_unclaimed():
            if self.approvals.claim_execution(proposal_id):
                self.background.submit(self.execute, proposal_id)
        return resolved


__all__ = ["ProposalFlow"]
