"""How restore work reads in Slack: `SlackNotifier` renders the plain values restore jobs and proposals hand over.

All the Slack wording of restore work is here: emoji, mentions, code blocks, the inline result table and its CSV.
"""

import csv
import io
from collections.abc import Sequence
from typing import Any

from slack_sdk import WebClient

from bot.approvals.views import COMMAND, ProposalView
from bot.restore_work.notifier import JobThread, QueryAnswer, Verification
from handlers.approvals import INLINE_SQL_CHARS, proposal_message
from handlers.blocks import section
from restore.query import QueryResult
from restore.targets import mask_dsn

CELL_WIDTH = 24  # characters per column in the inline table


class SlackNotifier:
    """`bot.restore_work.notifier.Notifier` over the Web API."""

    def __init__(self, client: WebClient) -> None:
        self.client = client

    # --- background jobs ------------------------------------------------------------------------------------------

    def job_started(self, channel: str, user: str, title: str) -> JobThread:
        parent = self._post(channel, f":hourglass_flowing_sand: {title} — started by <@{user}>")
        return JobThread(channel, parent, self._post(channel, "Starting…", thread_ts=parent))

    def job_progress(self, thread: JobThread, lines: Sequence[str]) -> None:
        self._update(thread.channel, thread.progress_ts, "\n".join(lines))

    def job_done(self, thread: JobThread, title: str, summary: str) -> None:
        self._update(thread.channel, thread.message_ts, f":white_check_mark: {title}: {summary}")

    def job_failed(self, thread: JobThread, title: str, error: str) -> None:
        self._update(thread.channel, thread.message_ts, f":warning: {title} failed: {error}")

    # --- answers and refusals -------------------------------------------------------------------------------------

    def query_answered(self, channel: str, user: str, answer: QueryAnswer) -> None:
        result = answer.result
        text = f"`{answer.target}` ({answer.role}) — <@{user}> asked:\n```{_clip(answer.sql_text, 500)}```\n"
        ts = self._post(channel, text + format_table(result, answer.shown))
        if result.row_count > answer.shown:
            more = " (capped)" if result.truncated else ""
            self._upload(
                channel,
                f"{answer.target}-query.csv",
                to_csv(result),
                thread_ts=ts,
                comment=f"All {result.row_count:,} rows{more} as CSV.",
            )

    def refused(self, channel: str, user: str, error: str, *, target: str | None = None) -> None:
        text = f":warning: {target}: {error}" if target else f":warning: {error}"
        self.client.chat_postEphemeral(channel=channel, user=user, text=mask_dsn(text))

    # --- proposals --------------------------------------------------------------------------------------------------

    def show_proposal(self, proposal: ProposalView) -> str | None:
        text, blocks = proposal_message(proposal)
        if proposal.message_ts:
            self.client.chat_update(channel=proposal.channel_id, ts=proposal.message_ts, text=text, blocks=blocks)
            return proposal.message_ts
        ts = str(self.client.chat_postMessage(channel=proposal.channel_id, text=text, blocks=blocks)["ts"])
        if len(proposal.sql_text) > INLINE_SQL_CHARS:
            self._upload(
                proposal.channel_id,
                f"proposal-{proposal.number}-{proposal.short_hash}.sql",
                proposal.sql_text,
                thread_ts=ts,
                comment=f"The exact SQL of proposal #{proposal.number} (sha256 {proposal.sql_sha256}).",
            )
        return ts

    def superseded(self, old: ProposalView, by: ProposalView) -> None:
        self._in_thread(old, f"Superseded by proposal #{by.number}; its approvals do not carry over.")

    def executing(self, proposal: ProposalView) -> None:
        self._in_thread(proposal, f":gear: Executing on {proposal.target}…")

    def executed(self, proposal: ProposalView) -> None:
        self._in_thread(proposal, execution_text(proposal))

    def verified(self, proposal: ProposalView, verification: Verification) -> None:
        if verification.error is not None:
            text = f"Verification diff could not run: {verification.error}"
        else:
            text = (
                f":mag: Verification diff of {verification.table} after proposal #{proposal.number}: "
                f"{verification.left_to_restore or 0:,} deleted rows left to restore."
            )
        self._in_thread(proposal, text)

    def expired(self, proposal: ProposalView) -> None:
        self._in_thread(proposal, "Expired without enough approvals.")

    def remind(self, proposal: ProposalView) -> None:
        """Raises when Slack refuses, so the reminder is released and retried."""
        self._post(proposal.channel_id, reminder_text(proposal), thread_ts=proposal.message_ts)

    # --- the Web API -------------------------------------------------------------------------------------------------

    def _in_thread(self, proposal: ProposalView, text: str) -> None:
        if proposal.message_ts:
            self._post(proposal.channel_id, text, thread_ts=proposal.message_ts)

    def _post(self, channel: str, text: str, *, thread_ts: str | None = None) -> str:
        text = mask_dsn(text)
        response = self.client.chat_postMessage(channel=channel, text=text, thread_ts=thread_ts, blocks=[section(text)])
        return str(response["ts"])

    def _update(self, channel: str, ts: str, text: str) -> None:
        text = mask_dsn(text)
        self.client.chat_update(channel=channel, ts=ts, text=text, blocks=[section(text)])

    def _upload(
        self, channel: str, filename: str, content: str, *, thread_ts: str | None = None, comment: str | None = None
    ) -> None:
        self.client.files_upload_v2(
            channel=channel, content=content, filename=filename, thread_ts=thread_ts, initial_comment=comment
        )


# --- rendering --------------------------------------------------------------------------------------------------


def _clip(text: str, width: int) -> str:
    text = text.replace("```", "'''")
    return text if len(text) <= width else text[: width - 1] + "…"


def _cell(value: Any) -> str:
    text = "NULL" if value is None else str(value)
    text = " ".join(text.split())
    return text if len(text) <= CELL_WIDTH else text[: CELL_WIDTH - 1] + "…"


def format_table(result: QueryResult, max_rows: int) -> str:
    """A code block: at most `max_rows` rows, cells cut at CELL_WIDTH characters, then a one-line summary."""
    if not result.columns:
        return "_The statement returned no rows._"
    rows = [[_cell(v) for v in row] for row in result.rows[:max_rows]]
    header = [_cell(c) for c in result.columns]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = lambda cells: " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()  # noqa: E731
    body = [line(header), "-+-".join("-" * w for w in widths), *(line(r) for r in rows)]
    more = result.row_count - len(rows)
    summary = f"{result.row_count:,} row(s) in {result.seconds:.2f}s"
    if more > 0:
        summary += f"; {len(rows)} shown, all of them in the CSV below"
    notes = "".join(f"\n:scissors: {note}" for note in result.notes())
    return "```" + _clip("\n".join(body), 2700) + "```\n" + summary + notes


def to_csv(result: QueryResult) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(result.columns)
    writer.writerows(["" if v is None else v for v in row] for row in result.rows)
    return out.getvalue()


def execution_text(view: ProposalView) -> str:
    result = view.result or {}
    approvers = ", ".join(f"<@{u}>" for u in view.approvers) or "nobody"
    if view.kind == COMMAND and "exit_code" in result:
        icon = ":white_check_mark:" if result["exit_code"] == 0 else ":x:"
        seen = result.get("journal_xids") or []
        journal = f" The journal saw transactions {', '.join(map(str, seen))} commit while it ran." if seen else ""
        return (
            f"{icon} Proposal #{view.number}: the command ran once against {view.target} and exited with code "
            f"{result['exit_code']} in {result.get('seconds', 0):.2f}s, approved by {approvers}.{journal}"
        )
    if view.status == "executed":
        counts = ", ".join(str(c) for c in result.get("counts", []))
        return (
            f":white_check_mark: Proposal #{view.number} executed on {view.target}: "
            f"{result.get('rows_affected', 0):,} rows (per statement: {counts}) in {result.get('seconds', 0):.2f}s, "
            f"approved by {approvers}. {result.get('how', '')}".rstrip()
        )
    return (
        f":x: Proposal #{view.number} failed on {view.target}: {result.get('error', 'unknown error')} "
        f"{result.get('how', '')}".rstrip()
    )


def reminder_text(view: ProposalView) -> str:
    who = " ".join(f"<@{u}>" for u in view.eligible) or "Approvers"
    left = max(0, view.approvals_required - len(view.approvers))
    return (
        f":hourglass: {who}: proposal #{view.number} on {view.target} needs {left} more approval(s) "
        f"before it expires at {view.expires_at:%H:%M} UTC. React with ✅ on it to approve, ❌ to reject."
    )


__all__ = ["SlackNotifier", "execution_text", "format_table", "reminder_text", "to_csv"]
