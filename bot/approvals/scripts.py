"""Script runs behind the fence: `rewind exec --request` asks in the incident channel, and runs the command once.

The request is a proposal of kind `command`. Its text (what the SHA-256 binds) names the command line, the SHA-256
of the script file it runs, who asked from which host, and which variable reaches which production target. The bot
counts approvals as for SQL, but never runs a command: the waiting process claims the approved proposal (the same
conditional UPDATE as SQL, so it runs once), checks that the script still hashes the same, runs it with its
environment untouched, and records the exit code. An edited script changes the text, so the approval does not apply.
"""

import getpass
import shlex
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from bot.approvals.context import Context, timeline_entry
from bot.approvals.execution import claim_execution, finish
from bot.approvals.policy import sql_sha256
from bot.approvals.propose import record
from bot.approvals.views import COMMAND, ProposalView, Proposed, get, view
from bot.errors import UsageError
from bot.store.models import EntryKind, Incident, IncidentStatus, Proposal, ProposalStatus
from restore.fence import Hit, script_file, script_sha256

POLL_S = 0.5
SETTLED = frozenset({ProposalStatus.REJECTED, ProposalStatus.EXPIRED, ProposalStatus.SUPERSEDED, ProposalStatus.FAILED})


@dataclass(frozen=True)
class ScriptRequest:
    """What a person asks to run, as the approvers read it. `text()` is what the approvals are bound to; it hashes
    the script file each time it is read, so a script edited since the request gives another text."""

    argv: tuple[str, ...]
    target: str
    asked: tuple[str, ...]  # who asked from where, and which variable reaches which target

    @classmethod
    def of(cls, argv: Sequence[str], hits: Sequence[Hit], *, requester: str | None = None) -> "ScriptRequest":
        targets = sorted({hit.target for hit in hits if hit.target})
        if len(targets) != 1:
            reached = ", ".join(targets) or "no production target it could name"
            raise UsageError(
                f"A script run is approved for one production target; this command reaches {reached}. "
                "Run it once per target, with --env naming the variable for that target."
            )
        asked = (
            f"asked by {requester or getpass.getuser()} on {socket.gethostname()}",
            *(f"{hit.var} ({hit.dsn}) reaches production target {hit.target}" for hit in hits),
        )
        return cls(tuple(argv), targets[0], asked)

    def text(self) -> str:
        path = script_file(self.argv)
        script = (
            f"script: {path} sha256 {script_sha256(self.argv)}"
            if path
            else "script: none named (the command line is what is approved)"
        )
        return "\n".join([f"$ {shlex.join(self.argv)}", script, *self.asked])


@dataclass(frozen=True)
class ScriptOutcome:
    proposal: ProposalView
    exit_code: int | None  # None: it never ran (rejected, expired, timed out, or the script changed)
    reason: str
    timed_out: bool = False


def request_run(ctx: Context, channel_id: str, request: ScriptRequest, requester_id: str) -> Proposed:
    """Record the request as a `command` proposal: no dry run (a command has none), nothing superseded."""
    return record(
        ctx,
        channel_id,
        ctx.target(request.target),
        request.text(),
        requester_id,
        proposer_name=None,
        kind=COMMAND,
        summary=f"run `{shlex.join(request.argv)[:70]}`",
        plan=None,
        dry={"ok": True, "kind": COMMAND},
    )


def incident_channel(ctx: Context, configured: str | None) -> str:
    """Where requests go: the configured channel, else the open incident declared last."""
    if configured:
        return configured
    with ctx.store.transaction() as session:
        channel = session.scalar(
            select(Incident.channel_id)
            .where(Incident.status == IncidentStatus.OPEN)
            .order_by(Incident.declared_at.desc())
            .limit(1)
        )
    if channel is None:
        raise UsageError(
            "There is no open incident to ask in. Declare one in Slack (`/inc declare …`, or `/inc declare --here` "
            "in an ops channel), or set REWIND_EXEC_CHANNEL to its channel id."
        )
    return channel


def wait_and_run(
    ctx: Context,
    request: ScriptRequest,
    proposal_id: int,
    *,
    deadline: datetime,
    say: Callable[[str], None],
    journaled: Callable[[datetime, datetime], list[int]] | None = None,
) -> ScriptOutcome:
    """Wait for the decision; when approved, claim the run, check the script's hash again, run it once."""
    shown = -1
    while True:
        proposal = get(ctx.store, proposal_id)
        if proposal.status == ProposalStatus.APPROVED:
            break
        if proposal.status in SETTLED:
            return ScriptOutcome(proposal, None, f"proposal #{proposal.number} was {proposal.status}")
        if ctx.clock() >= deadline:
            proposal = _expire(ctx, proposal_id)
            if proposal.status == ProposalStatus.APPROVED:  # the last approval came in as time ran out
                break
            return ScriptOutcome(proposal, None, "no decision before the timeout", timed_out=True)
        if len(proposal.approvers) != shown:
            shown = len(proposal.approvers)
            say(f"waiting for approvals: {shown}/{proposal.approvals_required}")
        time.sleep(POLL_S)
    if not claim_execution(ctx, proposal_id):
        return ScriptOutcome(get(ctx.store, proposal_id), None, "another process claimed this run")
    if sql_sha256(request.text()) != proposal.sql_sha256:
        error = "the script changed after it was proposed; its approvals do not apply to the new text"
        done = finish(ctx, proposal_id, ok=False, started=ctx.clock(), error=error)
        return ScriptOutcome(done, None, error)
    started = ctx.clock()
    try:
        exit_code = _run(request.argv)
    except UsageError as exc:  # claimed but not started: record that, so it never looks half-run
        return ScriptOutcome(finish(ctx, proposal_id, ok=False, started=started, error=str(exc)), None, str(exc))
    finished = ctx.clock()
    seconds = (finished - started).total_seconds()
    xids = journaled(started, finished) if journaled else []
    seen = f"; the journal saw transactions {', '.join(map(str, xids))} commit while it ran" if xids else ""
    how = f"(exit code {exit_code}{seen})"
    done = finish(
        ctx,
        proposal_id,
        ok=exit_code == 0,
        started=started,
        seconds=round(seconds, 3),
        error=None if exit_code == 0 else f"the command exited with code {exit_code}",
        how=how,
        result_extra={"exit_code": exit_code, "journal_xids": xids},
    )
    return ScriptOutcome(done, exit_code, how)


def _expire(ctx: Context, proposal_id: int) -> ProposalView:
    with ctx.store.transaction() as session:
        proposal = session.scalars(select(Proposal).where(Proposal.id == proposal_id).with_for_update()).one()
        if proposal.status == ProposalStatus.PROPOSED:
            proposal.status, proposal.decided_at = ProposalStatus.EXPIRED, ctx.clock()
            incident = session.get_one(Incident, proposal.incident_id)
            text = f"Proposal #{proposal.number} expired: its requester stopped waiting"
            data = {"proposal": proposal.number, "status": ProposalStatus.EXPIRED}
            session.add(timeline_entry(incident, EntryKind.PROPOSAL, text, ctx.clock(), data))
        session.flush()
        return view(session, proposal)


def _run(argv: Sequence[str]) -> int:
    """The command as typed, in this process's environment, unchanged; its exit code passed through."""
    try:
        return subprocess.run(list(argv), check=False).returncode
    except OSError as exc:
        raise UsageError(f"Could not start {argv[0]!r}: {exc.strerror}.") from exc
