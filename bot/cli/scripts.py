"""`rewind exec --request -- COMMAND …`: when a DSN in the environment reaches production, ask in the incident
channel, wait for the approvals a SQL proposal needs, then run the command once (`bot.approvals.scripts`)."""

import getpass
import socket
import sys
from collections.abc import Sequence
from datetime import datetime, timedelta

from bot.approvals.scripts import ScriptOutcome, ScriptRequest, incident_channel, request_run, wait_and_run
from bot.config import Settings
from bot.journal.service import journal_log, journals_of, sync_journal
from bot.services import Services
from bot.store import open_store
from bot.store.models import ProposalStatus
from restore.errors import RewindError
from restore.fence import Hit

CLOCK_SLACK = timedelta(seconds=1)  # this machine's clock against the database server's commit times
NOT_RUN = 3  # the exit code of a command that was refused, as `rewind exec` refuses one


def request_and_run(settings: Settings, argv: Sequence[str], hits: Sequence[Hit]) -> int:
    from bot.app import bind_slack_without_bolt  # the composition root: Slack wording lives in handlers

    services = Services.create(settings, open_store(settings.database_url))
    try:
        bind_slack_without_bolt(services)
        return _ask_and_run(services, argv, hits)
    finally:
        services.jobs.shutdown()
        services.store.dispose()


def _ask_and_run(services: Services, argv: Sequence[str], hits: Sequence[Hit]) -> int:
    settings, approvals = services.settings, services.approvals
    requester = settings.exec_requester or f"{getpass.getuser()}@{socket.gethostname()}"
    request = ScriptRequest.of(argv, hits, requester=requester)
    channel = incident_channel(approvals, settings.exec_channel)
    proposal = request_run(approvals, channel, request, requester).proposal
    services.jobs.proposals.publish(proposal)
    wait = timedelta(seconds=settings.exec_wait_seconds or settings.proposal_ttl_minutes * 60)
    say(
        f"Asked for approval as proposal #{proposal.number} (sha256 {proposal.short_hash}) in the incident channel; "
        f"waiting up to {int(wait.total_seconds())} s for {proposal.approvals_required} approvals."
    )
    outcome = wait_and_run(
        approvals,
        request,
        proposal.id,
        deadline=approvals.clock() + wait,
        say=say,
        journaled=lambda started, finished: _journaled(services, request.target, started, finished),
    )
    _tell_the_channel(services, outcome)
    if outcome.exit_code is None:
        say(f"Not run: {outcome.reason}.")
        return NOT_RUN
    return outcome.exit_code


def _journaled(services: Services, target: str, started: datetime, finished: datetime) -> list[int]:
    """Transactions a journal on the target saw commit while the command ran (synced first). Time is all the WAL
    says of who ran them: on a busy database, others' transactions in that window are listed too."""
    xids: list[int] = []
    targets = services.settings.all_targets()
    for name in journals_of(services.store, target):
        try:
            sync_journal(services.store, targets, name)
            window = journal_log(services.store, name, since=started - CLOCK_SLACK, until=finished + CLOCK_SLACK)
        except RewindError as exc:
            say(f"journal {name} could not be read: {exc}")
            continue
        xids += [t.xid for t in window.transactions]
    return xids


def _tell_the_channel(services: Services, outcome: ScriptOutcome) -> None:
    if outcome.proposal.status in (ProposalStatus.EXECUTED, ProposalStatus.FAILED):
        services.jobs.proposals.report(outcome.proposal)
        return
    notifier = services.jobs.background.notify
    notifier.show_proposal(outcome.proposal)
    if outcome.timed_out:
        notifier.expired(outcome.proposal)


def say(text: str) -> None:
    print(f"rewind: {text}", file=sys.stderr, flush=True)
