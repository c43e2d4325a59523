"""Reminders: a nudge when an open incident's timeline goes quiet, and a reminder when an action item falls due.

Every bot process runs the same job, so each reminder is *claimed* in the store before it is posted: on Postgres
with `SELECT … FOR UPDATE SKIP LOCKED` and an UPDATE in the same transaction, on SQLite with a conditional
`UPDATE … WHERE <still due>` whose rowcount says who won. The claim stamps `Incident.last_nudged_at` or
`Task.reminded_at` and commits before posting; if posting fails the stamp is put back so a later run retries.
APScheduler only supplies the tick, never the exactly-once guarantee.
"""

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from apscheduler.schedulers.background import BackgroundScheduler
from pydantic import BaseModel
from sqlalchemy import ColumnElement, and_, exists, func, or_, select, update
from sqlalchemy.orm import Session

from bot.store.models import (
    Entry,
    Flag,
    FlagStatus,
    Incident,
    IncidentStatus,
    Step,
    StepStatus,
    Task,
    TaskKind,
    TaskStatus,
)
from bot.store.session import Store
from bot.store.types import utcnow

log = logging.getLogger("rewind.scheduler")

Post = Callable[[str, str], None]
Clock = Callable[[], datetime]


class Reminder(BaseModel):
    """A message this process posted: a nudge to an incident channel, or an action reminder to its owner."""

    kind: Literal["nudge", "action_due"]
    incident_id: int
    task_id: int | None = None
    channel: str
    text: str


class _Claim(BaseModel):
    id: int
    previous: datetime | None


class ReminderService:
    """Finds due reminders, claims each in the store, posts it. `post(channel, text)` is chat.postMessage."""

    def __init__(
        self,
        store: Store,
        post: Post,
        clock: Clock = utcnow,
        *,
        nudge_after_minutes: int = 30,
        slash_command: str = "/inc",
    ) -> None:
        self.store = store
        self.post = post
        self.clock = clock
        self.nudge_after = timedelta(minutes=nudge_after_minutes)
        self.slash = slash_command

    def run_due(self, now: datetime | None = None) -> list[Reminder]:
        """Post every reminder due at `now` that no other process has claimed; return what this one posted."""
        now = now or self.clock()
        sent = [r for c in self._claim(Incident, self._nudge_due(now), now) if (r := self._send_nudge(c, now))]
        sent += [r for c in self._claim(Task, self._action_due(now), now) if (r := self._send_action(c, now))]
        return sent

    # --- what is due --------------------------------------------------------------------------------------------

    def _nudge_due(self, now: datetime) -> ColumnElement[bool]:
        """Open, quiet for `nudge_after`, and not nudged within `nudge_after` (so one nudge per quiet period)."""
        cutoff = now - self.nudge_after
        recent = exists().where(
            Entry.incident_id == Incident.id, Entry.deleted_at.is_(None), Entry.recorded_at > cutoff
        )
        return and_(
            Incident.status == IncidentStatus.OPEN,
            Incident.declared_at <= cutoff,
            or_(Incident.last_nudged_at.is_(None), Incident.last_nudged_at <= cutoff),
            ~recent,
        )

    @staticmethod
    def _action_due(now: datetime) -> ColumnElement[bool]:
        return and_(
            Task.kind == TaskKind.ACTION,
            Task.status == TaskStatus.OPEN,
            Task.due_at.is_not(None),
            Task.due_at <= now,
            Task.reminded_at.is_(None),
        )

    # --- claiming -----------------------------------------------------------------------------------------------

    def _claim(self, model: type[Incident] | type[Task], due: ColumnElement[bool], now: datetime) -> list[_Claim]:
        stamp = model.last_nudged_at if model is Incident else model.reminded_at  # type: ignore[union-attr]
        if self.store.is_postgres:
            return self._claim_locked(model, stamp, due, now)
        return self._claim_conditional(model, stamp, due, now)

    def _claim_locked(self, model: Any, stamp: Any, due: ColumnElement[bool], now: datetime) -> list[_Claim]:
        """Postgres: rows another process is claiming right now are skipped, not waited for."""
        with self.store.transaction() as session:
            rows = session.execute(
                select(model.id, stamp).where(due).order_by(model.id).with_for_update(skip_locked=True, of=model)
            ).all()
            if rows:
                session.execute(
                    update(model).where(model.id.in_([r[0] for r in rows])).values({stamp: now}),
                    execution_options={"synchronize_session": False},
                )
        return [_Claim(id=r[0], previous=r[1]) for r in rows]

    def _claim_conditional(self, model: Any, stamp: Any, due: ColumnElement[bool], now: datetime) -> list[_Claim]:
        """SQLite: writers are serialised, so re-checking `due` inside the UPDATE makes only one claim succeed."""
        with self.store.transaction() as session:
            candidates = session.execute(select(model.id, stamp).where(due).order_by(model.id)).all()
        claims = []
        for row_id, previous in candidates:
            with self.store.transaction() as session:
                result = session.execute(
                    update(model).where(model.id == row_id, due).values({stamp: now}),
                    execution_options={"synchronize_session": False},
                )
                if result.rowcount == 1:  # type: ignore[attr-defined]
                    claims.append(_Claim(id=row_id, previous=previous))
        return claims

    def _release(self, model: Any, claim: _Claim, now: datetime) -> None:
        """Undo our stamp (only if it is still ours) so the next run tries again."""
        stamp = model.last_nudged_at if model is Incident else model.reminded_at
        with self.store.transaction() as session:
            session.execute(
                update(model).where(model.id == claim.id, stamp == now).values({stamp: claim.previous}),
                execution_options={"synchronize_session": False},
            )

    # --- sending ------------------------------------------------------------------------------------------------

    def _send_nudge(self, claim: _Claim, now: datetime) -> Reminder | None:
        with self.store.transaction() as session:
            incident = session.get_one(Incident, claim.id)
            text = self._nudge_text(session, incident, now)
        reminder = Reminder(kind="nudge", incident_id=incident.id, channel=incident.channel_id, text=text)
        return self._deliver(reminder, Incident, claim, now)

    def _send_action(self, claim: _Claim, now: datetime) -> Reminder | None:
        with self.store.transaction() as session:
            task = session.get_one(Task, claim.id)
            channel_name = session.scalar(select(Incident.channel_name).where(Incident.id == task.incident_id))
        due = task.due_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if task.due_at else "now"
        text = f":alarm_clock: Action item #{task.number} from #{channel_name} is due ({due}): {task.text}"
        reminder = Reminder(
            kind="action_due", incident_id=task.incident_id, task_id=task.id, channel=task.owner_id, text=text
        )
        return self._deliver(reminder, Task, claim, now)

    def _deliver(self, reminder: Reminder, model: Any, claim: _Claim, now: datetime) -> Reminder | None:
        try:
            self.post(reminder.channel, reminder.text)
        except Exception:
            log.exception("posting a %s reminder to %s failed; it will be retried", reminder.kind, reminder.channel)
            self._release(model, claim, now)
            return None
        return reminder

    def _nudge_text(self, session: Session, incident: Incident, now: datetime) -> str:
        last = session.scalar(
            select(func.max(Entry.recorded_at)).where(Entry.incident_id == incident.id, Entry.deleted_at.is_(None))
        )
        quiet = now - max(t for t in (last, incident.declared_at) if t is not None)
        flags = session.execute(
            select(Flag.number, Entry.text)
            .join(Entry, Entry.id == Flag.entry_id)
            .where(Flag.incident_id == incident.id, Flag.status == FlagStatus.OPEN, Entry.deleted_at.is_(None))
            .order_by(Flag.number)
        ).all()
        steps = session.scalars(
            select(Step).where(Step.incident_id == incident.id, Step.status != StepStatus.DONE).order_by(Step.position)
        ).all()
        return nudge_text(int(quiet.total_seconds() // 60), flags, steps, self.slash)


def nudge_text(quiet_minutes: int, flags: Sequence[Any], steps: Sequence[Step], slash: str) -> str:
    lines = [
        f":hourglass: Nothing has been added to the timeline for {quiet_minutes} min. "
        f"What is happening? `{slash} note <text>` or 📌 a message."
    ]
    if flags:
        lines.append("Open yellow flags:")
        lines += [f"• #{number} {text}" for number, text in flags]
    if steps:
        lines.append("Steps not done:")
        lines += [
            f"• {s.position}. {s.title}" + (f" ({_mention(s.owner_id)})" if s.owner_id else "") + f" — {s.status}"
            for s in steps
        ]
    return "\n".join(lines)


def _mention(user: str) -> str:
    """A Slack user id as a mention; a name typed in the shell (`@alice`) as it is."""
    return user if user.startswith("@") else f"<@{user}>"


def start_scheduler(service: ReminderService, interval_s: float = 60) -> BackgroundScheduler:
    """A started background scheduler that runs `service.run_due()` every `interval_s`; call `.shutdown()`."""
    scheduler = BackgroundScheduler(timezone=UTC)
    scheduler.add_job(
        service.run_due,
        "interval",
        seconds=interval_s,
        id="rewind-reminders",
        max_instances=1,
        coalesce=True,
        next_run_time=datetime.now(UTC),
    )
    scheduler.start()
    return scheduler


def add_proposal_job(scheduler: BackgroundScheduler, run_due: Callable[[], object], interval_s: float = 60) -> None:
    """Proposal expiry and the halfway reminder to approvers (`RestoreJobs.run_due`). Like the reminders above,
    each expiry and each reminder is claimed in the store (a conditional UPDATE, after `FOR UPDATE SKIP LOCKED` on
    Postgres) before anything is posted, so with several processes exactly one posts it."""
    scheduler.add_job(
        run_due,
        "interval",
        seconds=interval_s,
        id="rewind-proposals",
        max_instances=1,
        coalesce=True,
        next_run_time=datetime.now(UTC),
    )


__all__ = ["Reminder", "ReminderService", "add_proposal_job", "nudge_text", "start_scheduler"]
