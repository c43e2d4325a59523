"""The run of show (ordered steps with owners) and who does what (assignments, action items)."""

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select

from bot.errors import NotFoundError, UsageError
from bot.scribe.entries import Origin, claim_origin, new_entry
from bot.scribe.incidents import require_incident
from bot.store.models import Entry, EntryKind, EntrySource, Incident, Step, StepStatus, Task, TaskKind
from bot.store.session import Store
from bot.store.types import utcnow

Clock = Callable[[], datetime]


def mention(user: str | None) -> str:
    """Slack renders `<@U123>` as a name; a name typed in the shell (`@alice`) stays as it is."""
    if not user:
        return "nobody"
    return user if user.startswith("@") else f"<@{user}>"


class RunOfShowService:
    def __init__(self, store: Store, clock: Clock = utcnow) -> None:
        self.store = store
        self.clock = clock

    def set_plan(self, channel_id: str, titles: list[str], user_id: str, author_name: str | None = None) -> list[Step]:
        """Replace the run of show. The old plan stays on the timeline as the entry that set it."""
        now = self.clock()
        with self.store.transaction() as session:
            incident = require_incident(session, channel_id, lock=True)
            session.execute(delete(Step).where(Step.incident_id == incident.id))
            steps = [Step(incident_id=incident.id, position=i, title=t) for i, t in enumerate(titles, start=1)]
            session.add_all(steps)
            listing = "; ".join(f"{s.position}. {s.title}" for s in steps)
            session.add(_step_entry(incident, f"Run of show: {listing}", user_id, author_name, now))
            session.flush()
            return steps

    def steps(self, channel_id: str) -> list[Step]:
        with self.store.transaction() as session:
            incident = require_incident(session, channel_id)
            return list(session.scalars(select(Step).where(Step.incident_id == incident.id).order_by(Step.position)))

    def update_step(
        self,
        channel_id: str,
        number: int,
        action: str,
        user_id: str,
        *,
        owner: str | None = None,
        author_name: str | None = None,
    ) -> Step:
        now = self.clock()
        with self.store.transaction() as session:
            incident = require_incident(session, channel_id)
            step = session.scalars(
                select(Step).where(Step.incident_id == incident.id, Step.position == number).with_for_update()
            ).one_or_none()
            if step is None:
                count = session.scalar(select(func.count()).where(Step.incident_id == incident.id))
                hint = f"the run of show has {count} steps" if count else "there is no run of show yet"
                raise NotFoundError(f"There is no step {number}: {hint}. Set one with `/inc plan <step>; <step>`.")
            text = _apply_step_action(step, action, owner, now)
            data = {"step": step.position, "status": step.status, "owner": step.owner_id}
            session.add(_step_entry(incident, text, user_id, author_name, now, data))
            return step

    def create_task(
        self,
        channel_id: str,
        kind: TaskKind,
        owner: str,
        text: str,
        user_id: str,
        author_name: str | None = None,
        *,
        at: datetime | None = None,
        source: EntrySource = EntrySource.COMMAND,
        origin: Origin | None = None,
    ) -> Task:
        """An assignment or action item, created `at` (when the command was typed, if read back from history)."""
        now = self.clock()
        with self.store.transaction() as session:
            incident = require_incident(session, channel_id, lock=True)
            claim_origin(session, incident, origin)
            number = session.scalar(
                select(func.max(Task.number)).where(Task.incident_id == incident.id, Task.kind == kind)
            )
            task = Task(
                incident_id=incident.id,
                kind=kind,
                number=(number or 0) + 1,
                owner_id=owner,
                text=text,
                created_by=user_id,
                created_at=at or now,
            )
            session.add(task)
            label = "Assigned" if kind == TaskKind.ASSIGNMENT else "Action item"
            entry = new_entry(
                incident,
                EntryKind.ASSIGNMENT if kind == TaskKind.ASSIGNMENT else EntryKind.ACTION,
                author=user_id,
                author_name=author_name,
                text=f"{label} to {mention(owner)}: {text}",
                occurred_at=at or now,
                recorded_at=now,
                source=source,
                origin=origin,
            )
            session.add(entry)
            session.flush()
            return task

    def tasks(self, channel_id: str) -> list[Task]:
        with self.store.transaction() as session:
            incident = require_incident(session, channel_id)
            query = select(Task).where(Task.incident_id == incident.id).order_by(Task.kind, Task.number)
            return list(session.scalars(query))


def _step_entry(
    incident: Incident,
    text: str,
    user_id: str,
    author_name: str | None,
    now: datetime,
    data: dict[str, Any] | None = None,
) -> Entry:
    return new_entry(
        incident,
        EntryKind.STEP,
        author=user_id,
        author_name=author_name,
        text=text,
        occurred_at=now,
        recorded_at=now,
        data=data,
    )


def _apply_step_action(step: Step, action: str, owner: str | None, now: datetime) -> str:
    if action == "start":
        if step.status != StepStatus.PENDING:
            raise UsageError(f"Step {step.position} is already {step.status}.", f"/inc step {step.position} done")
        step.status, step.started_at = StepStatus.IN_PROGRESS, now
        return f"Step {step.position} started: {step.title}"
    if action == "done":
        if step.status == StepStatus.DONE:
            raise UsageError(f"Step {step.position} is already done.", "/inc status")
        step.status, step.done_at = StepStatus.DONE, now
        step.started_at = step.started_at or now
        return f"Step {step.position} done: {step.title}"
    step.owner_id = owner
    return f"Step {step.position} owner: {mention(owner)} ({step.title})"
