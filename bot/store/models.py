"""The state store's tables (SQLAlchemy 2). Alembic migrations in `migrations/` mirror these exactly.

Idempotency lives here as unique constraints, not in memory, so it holds across bot processes:
`slack_events.event_id` dedupes redelivered events and `entries.dedupe_key` dedupes one message's 📌 or 🟡.
"""

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from bot.store.types import UTCDateTime, utcnow


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON()}


class IncidentStatus(enum.StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"
    CLOSED = "closed"


class EntryKind(enum.StrEnum):
    NOTE = "note"
    FLAG = "flag"
    STEP = "step"
    ASSIGNMENT = "assignment"
    ACTION = "action"
    STATUS = "status"
    IMPACT = "impact"
    CAUSE = "cause"
    QUESTION = "question"
    RESTORE = "restore"
    PROPOSAL = "proposal"
    APPROVAL = "approval"
    EXECUTION = "execution"


class EntrySource(enum.StrEnum):
    COMMAND = "command"
    REACTION = "reaction"
    SHORTCUT = "shortcut"
    IMPORT = "import"
    SYSTEM = "system"


class FlagStatus(enum.StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"


class StepStatus(enum.StrEnum):
    PENDING = "pending"
    IN_PROGRESS = "in progress"
    DONE = "done"


class TaskKind(enum.StrEnum):
    ASSIGNMENT = "assignment"
    ACTION = "action"


class TaskStatus(enum.StrEnum):
    OPEN = "open"
    DONE = "done"


def _enum_column(enum_type: type[enum.StrEnum]) -> String:
    return String(max(len(m.value) for m in enum_type) + 8)


class Incident(Base):
    __tablename__ = "incidents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel_id: Mapped[str] = mapped_column(String(64), unique=True)
    channel_name: Mapped[str] = mapped_column(String(128))
    title: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(_enum_column(IncidentStatus), default=IncidentStatus.OPEN)
    declared_by: Mapped[str] = mapped_column(String(64))
    declared_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    header_ts: Mapped[str | None] = mapped_column(String(32))
    last_nudged_at: Mapped[datetime | None]

    entries: Mapped[list["Entry"]] = relationship(back_populates="incident", order_by="Entry.occurred_at")


class Entry(Base):
    """One thing said about an incident: its timeline. Soft-deleted, never removed."""

    __tablename__ = "entries"
    __table_args__ = (UniqueConstraint("incident_id", "dedupe_key", name="uq_entries_dedupe"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(_enum_column(EntryKind))
    text: Mapped[str] = mapped_column(Text)
    author_id: Mapped[str] = mapped_column(String(64))
    author_name: Mapped[str | None] = mapped_column(String(128))
    occurred_at: Mapped[datetime]
    approximate: Mapped[bool] = mapped_column(Boolean, default=False)
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)
    source: Mapped[str] = mapped_column(_enum_column(EntrySource), default=EntrySource.COMMAND)
    source_channel: Mapped[str | None] = mapped_column(String(64))
    source_ts: Mapped[str | None] = mapped_column(String(32))
    permalink: Mapped[str | None] = mapped_column(Text)
    dedupe_key: Mapped[str | None] = mapped_column(String(200))
    deleted_at: Mapped[datetime | None]
    data: Mapped[dict[str, Any] | None]

    incident: Mapped[Incident] = relationship(back_populates="entries")
    reactors: Mapped[list["EntryReactor"]] = relationship(cascade="all, delete-orphan")


class EntryReactor(Base):
    """Who added the reaction that made an entry; the entry is withdrawn when the last one removes theirs."""

    __tablename__ = "entry_reactors"

    entry_id: Mapped[int] = mapped_column(ForeignKey("entries.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    reacted_at: Mapped[datetime] = mapped_column(default=utcnow)


class Flag(Base):
    """A yellow flag: a risk someone noticed. Open flags are the post-mortem's open questions."""

    __tablename__ = "flags"
    __table_args__ = (UniqueConstraint("incident_id", "number", name="uq_flags_number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"), index=True)
    number: Mapped[int]
    entry_id: Mapped[int] = mapped_column(ForeignKey("entries.id", ondelete="CASCADE"), unique=True)
    status: Mapped[str] = mapped_column(_enum_column(FlagStatus), default=FlagStatus.OPEN)
    resolution: Mapped[str | None] = mapped_column(Text)
    resolved_by: Mapped[str | None] = mapped_column(String(64))
    resolved_at: Mapped[datetime | None]

    entry: Mapped[Entry] = relationship()


class Step(Base):
    """One step of the run of show."""

    __tablename__ = "steps"
    __table_args__ = (UniqueConstraint("incident_id", "position", name="uq_steps_position"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"), index=True)
    position: Mapped[int]
    title: Mapped[str] = mapped_column(Text)
    owner_id: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(_enum_column(StepStatus), default=StepStatus.PENDING)
    started_at: Mapped[datetime | None]
    done_at: Mapped[datetime | None]


class Task(Base):
    """An assignment (during the incident) or an action item (a follow-up that outlives it)."""

    __tablename__ = "tasks"
    __table_args__ = (UniqueConstraint("incident_id", "kind", "number", name="uq_tasks_number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(_enum_column(TaskKind))
    number: Mapped[int]
    owner_id: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(_enum_column(TaskStatus), default=TaskStatus.OPEN)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    due_at: Mapped[datetime | None]
    reminded_at: Mapped[datetime | None]


class SlackEvent(Base):
    """Event ids already handled. Inserting one is how a process claims an event; a duplicate id is a no-op."""

    __tablename__ = "slack_events"

    event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class ProposalStatus(enum.StrEnum):
    """`proposed -> approved -> executing -> executed | failed`; from `proposed` also rejected/expired/superseded."""

    PROPOSED = "proposed"
    APPROVED = "approved"
    EXECUTING = "executing"
    EXECUTED = "executed"
    FAILED = "failed"
    REJECTED = "rejected"
    EXPIRED = "expired"
    SUPERSEDED = "superseded"


class Proposal(Base):
    """SQL aimed at one named target, bound to the SHA-256 of its exact text. Approvals never carry over."""

    __tablename__ = "proposals"
    __table_args__ = (UniqueConstraint("incident_id", "number", name="uq_proposals_number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"), index=True)
    number: Mapped[int]
    kind: Mapped[str] = mapped_column(String(16))  # "sql" (/inc propose) or "plan" (a generated restore plan)
    summary: Mapped[str] = mapped_column(Text)
    target: Mapped[str] = mapped_column(String(128))
    sql_text: Mapped[str] = mapped_column(Text)
    sql_sha256: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(_enum_column(ProposalStatus), default=ProposalStatus.PROPOSED, index=True)
    proposer_id: Mapped[str] = mapped_column(String(64))
    proposer_name: Mapped[str | None] = mapped_column(String(128))
    approvals_required: Mapped[int]
    eligible: Mapped[dict[str, Any] | None]  # {"users": [...]}; empty list = anyone but the proposer
    dry_run: Mapped[dict[str, Any] | None]  # {"ok", "counts", "statements", "seconds", "error"}
    plan: Mapped[dict[str, Any] | None]  # generated plans: table, where, backup, live, with_dependents, revert
    channel_id: Mapped[str] = mapped_column(String(64))
    message_ts: Mapped[str | None] = mapped_column(String(32), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    remind_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    reminded_at: Mapped[datetime | None]
    decided_at: Mapped[datetime | None]
    executing_since: Mapped[datetime | None]
    xid: Mapped[int | None] = mapped_column(BigInteger)
    finished_at: Mapped[datetime | None]
    result: Mapped[dict[str, Any] | None]  # {"counts", "rows_affected", "seconds", "error", "verification"}


class ProposalApproval(Base):
    """A standing ✅ (or button) approval of one proposal, i.e. of one SQL hash. Revoking deletes the row."""

    __tablename__ = "proposal_approvals"

    proposal_id: Mapped[int] = mapped_column(ForeignKey("proposals.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    sql_sha256: Mapped[str] = mapped_column(String(64))
    approved_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditLog(Base):
    """Append-only record of every execution outcome and of every agent tool call. A trigger (migration 0002) refuses
    UPDATE and DELETE.

    An execution fills the proposal columns. An agent's tool call fills `actor`, `tool` and `arguments` (SQL
    included), with `target` and `sql_sha256` when the call names them, and `proposal_id` when it made one.
    """

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    incident_id: Mapped[int | None] = mapped_column(Integer, index=True)  # no foreign keys: the log outlives them
    proposal_id: Mapped[int | None] = mapped_column(Integer)
    sql_sha256: Mapped[str | None] = mapped_column(String(64))
    target: Mapped[str | None] = mapped_column(String(128))
    proposer_id: Mapped[str | None] = mapped_column(String(64))
    approvers: Mapped[dict[str, Any] | None]  # {"users": [...]}
    row_counts: Mapped[dict[str, Any] | None]  # {"counts": [...], "rows_affected": n}
    duration_s: Mapped[float | None] = mapped_column(Float)
    outcome: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[str | None] = mapped_column(String(64), index=True)  # who called a tool, e.g. "agent:mcp"
    tool: Mapped[str | None] = mapped_column(String(64))
    arguments: Mapped[dict[str, Any] | None]


# Imported for its side effect: the journal tables join Base.metadata, which Alembic compares with the migrations.
from bot.store import journal_models as _journal_models  # noqa: E402,F401
