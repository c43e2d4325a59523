"""The post-mortem as plain values: what `build` reads from the store and every renderer reads."""

from collections.abc import Callable
from datetime import datetime
from typing import Any

from pydantic import BaseModel, TypeAdapter

from bot.store.models import (
    EntryKind,
)

# User-typed text gets a label so a row reads on its own; system-made entries ("Assigned to …", "Step 2 done: …",
# "Incident resolved") already do. Plain-str keys: these lookups run once per entry.
KIND_LABELS = {
    EntryKind.IMPACT.value: "Impact",
    EntryKind.CAUSE.value: "Root cause",
    EntryKind.QUESTION.value: "Question",
}
COUNTED_KINDS = frozenset({EntryKind.PROPOSAL.value, EntryKind.EXECUTION.value})
NO_RESTORE_OPERATIONS = "No restore operations were run through Rewind."

Resolve = Callable[[str], str]


class TimelineRow(BaseModel):
    """One timeline entry. `text` is the event without attribution; renderers add "— author"."""

    time: datetime
    approximate: bool
    author: str
    kind: str
    text: str


class Header(BaseModel):
    title: str
    channel_id: str
    channel_name: str
    status: str
    declared_at: datetime
    resolved_at: datetime | None
    closed_at: datetime | None
    duration_s: int | None
    participants: list[str]
    zone: str


class Statement(BaseModel):
    """An impact or root-cause statement."""

    time: datetime
    author: str
    text: str


class RestoreFigures(BaseModel):
    """What one restore operation recorded (replica provisioned, diff run, plan generated...)."""

    time: datetime
    text: str
    figures: dict[str, Any]


class Question(BaseModel):
    source: str
    author: str
    text: str


class ActionItem(BaseModel):
    item: str
    owner: str
    status: str
    due_at: datetime | None = None


class StepSummary(BaseModel):
    position: int
    title: str
    owner: str | None
    status: str
    started_at: datetime | None
    done_at: datetime | None


class Span(BaseModel):
    """A shaded stretch of time on the picture: `kind` is "gap" (after the backup) or "damage"."""

    kind: str
    label: str
    start: datetime
    end: datetime


class ProposalSummary(BaseModel):
    """One restore operation for the post-mortem; filled in by the approval flow."""

    number: int
    target: str
    summary: str
    status: str
    proposer: str
    approvers: list[str] = []
    sql_sha256: str | None = None
    rows_affected: int | None = None
    duration_s: float | None = None
    executed_at: datetime | None = None


TIMELINE_ROWS = TypeAdapter(list[TimelineRow])


class PostMortem(BaseModel):
    header: Header
    timeline: list[TimelineRow]
    impact: list[Statement]
    root_cause: list[Statement]
    restore_figures: list[RestoreFigures]
    open_questions: list[Question]
    action_items: list[ActionItem]
    steps: list[StepSummary]
    spans: list[Span]
    restore_operations: list[ProposalSummary]
