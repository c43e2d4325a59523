"""What restore work tells the channel: the `Notifier` protocol and the plain values it hands over.

Values only (titles, summaries, counts, query results, proposal views), never Slack wording: no emoji, mentions, bold
or code blocks. `handlers/restore_views.py` renders them for Slack; shell mode goes through the same renderer.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from bot.approvals.views import ProposalView
from restore.query import QueryResult


@dataclass(frozen=True)
class JobThread:
    """Where a background job speaks: its message (updated when it ends) and the progress reply in its thread."""

    channel: str
    message_ts: str
    progress_ts: str


@dataclass(frozen=True)
class QueryAnswer:
    """A read-only query's result, and how many of its rows the channel shows inline (the rest go to a CSV)."""

    target: str
    role: str
    sql_text: str
    result: QueryResult
    shown: int


@dataclass(frozen=True)
class Verification:
    """After a generated plan ran: how many of the deleted rows are still missing, or why that could not be checked."""

    table: str
    left_to_restore: int | None = None
    error: str | None = None


class Notifier(Protocol):
    """How restore work speaks in the channel. Implemented over the Slack Web API in handlers/restore_views.py."""

    # a background job: its message, then progress lines, then how it ended
    def job_started(self, channel: str, user: str, title: str) -> JobThread: ...

    def job_progress(self, thread: JobThread, lines: Sequence[str]) -> None: ...

    def job_done(self, thread: JobThread, title: str, summary: str) -> None: ...

    def job_failed(self, thread: JobThread, title: str, error: str) -> None: ...

    # answers and refusals for one person
    def query_answered(self, channel: str, user: str, answer: QueryAnswer) -> None: ...

    def refused(self, channel: str, user: str, error: str, *, target: str | None = None) -> None: ...

    # a proposal's message and what happens in its thread
    def show_proposal(self, proposal: ProposalView) -> str | None: ...

    def superseded(self, old: ProposalView, by: ProposalView) -> None: ...

    def executing(self, proposal: ProposalView) -> None: ...

    def executed(self, proposal: ProposalView) -> None: ...

    def verified(self, proposal: ProposalView, verification: Verification) -> None: ...

    def expired(self, proposal: ProposalView) -> None: ...

    def remind(self, proposal: ProposalView) -> None: ...


__all__ = ["JobThread", "Notifier", "QueryAnswer", "Verification"]
