"""`rewind exec --request -- COMMAND …`: when a DSN in the environment reaches production, ask in the incident
channel, wait for the approvals a SQL proposal needs, then run the command once (`bot.approvals.scripts`)."""

import getpass
import socket
import sys
from collections.abc import Callable, Sequence
from datetime import timedelta

from bot.approvals.scripts import ScriptOutcome, ScriptRequest, incident_channel, request_run, wait_and_run
from bot.config import Settings
from bot.services import Services
from bot.store import open_store
from bot.store.models import ProposalStatus
from restore.fence import Hit

NOT_RUN = 3  # the exit code of a command that was refused, as `rewind exec` refuses one


def request_handler(settings_loader: Callable[[], Settings]) -> Callable[[list[str], list[Hit]], int]:
    return lambda argv, hits: request_and_run(settings_loader(), argv, hits)


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
    outcome = wait_and_run(approvals, request, proposal.id, deadline=approvals.clock() + wait, say=say)
    _tell_the_channel(services, outcome)
    if outcome.exit_code is None:
        say(f"Not run: {outcome.reason}.")
        return NOT_RUN
    return outcome.exit_code


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
