"""The scribe's services on the real state store, SQLite and Postgres."""

import threading
from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from freezegun import freeze_time
from sqlalchemy import func, select

from bot.errors import NotFoundError, NotInIncidentError, UsageError
from bot.scribe.incidents import IncidentService, channel_name_for
from bot.scribe.runofshow import RunOfShowService
from bot.scribe.timeline import DuplicateEvent, MessageRef, TimelineService
from bot.store import Store
from bot.store.models import Base, Entry, EntryKind, EntrySource, IncidentStatus, StepStatus, TaskKind

CHANNEL = "C0INC"


def declare(store: Store) -> None:
    IncidentService(store).declare(title="Prices vanished", user_id="U1", channel_id=CHANNEL, channel_name="inc-x")


def entries(store: Store, include_deleted: bool = False) -> list[Entry]:
    with store.transaction() as session:
        query = select(Entry).order_by(Entry.id)
        if not include_deleted:
            query = query.where(Entry.deleted_at.is_(None))
        return list(session.scalars(query))


def message(ts: str = "1769077320.000100", text: str = "prices are gone") -> MessageRef:
    posted = datetime.fromtimestamp(float(ts), tz=UTC)
    return MessageRef(
        channel_id=CHANNEL, ts=ts, author_id="U2", text=text, occurred_at=posted, permalink="https://x/p1"
    )


def test_migrations_match_the_models(store: Store) -> None:
    with store.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []


def test_channel_names_follow_the_convention() -> None:
    day = datetime(2026, 1, 22, tzinfo=UTC)
    assert channel_name_for("Prices vanished from PROD!", day) == "inc-20260122-prices-vanished-from-prod"
    assert channel_name_for("¡¡¡", day) == "inc-20260122-incident"
    assert len(channel_name_for("x" * 200, day)) == 80


@freeze_time("2026-01-22 14:30:00")
def test_declare_note_and_times_are_utc(store: Store) -> None:
    declare(store)
    timeline = TimelineService(store)
    backdated = datetime(2026, 1, 22, 3, 58, tzinfo=UTC)
    timeline.add(CHANNEL, EntryKind.NOTE, "script started", "U1", at=backdated, approximate=True)
    rows = entries(store)
    assert [(e.kind, e.text) for e in rows] == [
        ("status", "Incident declared: Prices vanished"),
        ("note", "script started"),
    ]
    note = rows[1]
    assert note.occurred_at == backdated and note.occurred_at.tzinfo is not None
    assert note.approximate and note.recorded_at == datetime(2026, 1, 22, 14, 30, tzinfo=UTC)


def test_commands_outside_an_incident_record_nothing(store: Store) -> None:
    with pytest.raises(NotInIncidentError, match="declare --here"):
        TimelineService(store).add("C0OTHER", EntryKind.NOTE, "x", "U1")
    assert entries(store) == []


def test_flags_resolve_and_bad_numbers(store: Store) -> None:
    declare(store)
    timeline = TimelineService(store)
    first = timeline.raise_flag(CHANNEL, "backup may lack late invoices", "U1")
    second = timeline.raise_flag(CHANNEL, "payments after 4am", "U2")
    assert (first.number, second.number) == (1, 2)
    timeline.resolve_flag(CHANNEL, 1, "they are in live", "U3")
    before = len(entries(store))
    with pytest.raises(NotFoundError, match="no yellow flag 7"):
        timeline.resolve_flag(CHANNEL, 7, "?", "U3")
    with pytest.raises(UsageError, match="already resolved"):
        timeline.resolve_flag(CHANNEL, 1, "again", "U3")
    assert len(entries(store)) == before
    statuses = [(f.number, f.status, f.resolution) for f, _ in timeline.flags(CHANNEL)]
    assert statuses == [(1, "resolved", "they are in live"), (2, "open", None)]


def test_one_message_one_entry_whoever_reacts(store: Store) -> None:
    declare(store)
    timeline = TimelineService(store)
    first = timeline.record_message(message(), EntryKind.NOTE, "U5", source=EntrySource.REACTION, event_id="Ev1")
    again = timeline.record_message(message(), EntryKind.NOTE, "U5", source=EntrySource.REACTION, event_id="Ev2")
    other = timeline.record_message(message(), EntryKind.NOTE, "U6", source=EntrySource.REACTION, event_id="Ev3")
    assert first.created and not again.created and not other.created
    with pytest.raises(DuplicateEvent):
        timeline.record_message(message(), EntryKind.NOTE, "U7", source=EntrySource.REACTION, event_id="Ev1")
    notes = [e for e in entries(store) if e.kind == EntryKind.NOTE]
    assert len(notes) == 1 and notes[0].permalink == "https://x/p1" and notes[0].author_id == "U2"


def test_withdrawn_when_the_last_reaction_goes_and_restored_when_it_returns(store: Store) -> None:
    declare(store)
    timeline = TimelineService(store)
    for user in ("U5", "U6"):
        timeline.record_message(message(), EntryKind.NOTE, user, source=EntrySource.REACTION)
    assert timeline.withdraw_reaction(CHANNEL, message().ts, EntryKind.NOTE, "U5") is None
    withdrawn = timeline.withdraw_reaction(CHANNEL, message().ts, EntryKind.NOTE, "U6")
    assert withdrawn is not None and withdrawn.deleted_at is not None
    assert [e.kind for e in entries(store)] == ["status"]
    assert len(entries(store, include_deleted=True)) == 2  # soft delete keeps the record
    back = timeline.record_message(message(), EntryKind.NOTE, "U6", source=EntrySource.REACTION)
    assert back.created and len(entries(store)) == 2


def test_flag_from_a_message_gets_a_number_and_edits_follow(store: Store) -> None:
    declare(store)
    timeline = TimelineService(store)
    recorded = timeline.record_message(message(), EntryKind.FLAG, "U5", source=EntrySource.REACTION)
    assert recorded.flag_number == 1
    timeline.edit_message(CHANNEL, message().ts, "prices AND products are gone", event_id="EvEdit")
    timeline.edit_message(CHANNEL, message().ts, "ignored redelivery", event_id=None)
    texts = {e.kind: e.text for e in entries(store)}
    assert texts["flag"] == "ignored redelivery"
    with pytest.raises(DuplicateEvent):
        timeline.edit_message(CHANNEL, message().ts, "x", event_id="EvEdit")


def test_two_processes_racing_on_one_message_record_once(store: Store, store_url: str) -> None:
    stores = [store, Store(store_url)]
    declare(stores[0])
    barrier = threading.Barrier(8)
    results: list[bool] = []

    def react(i: int) -> None:
        timeline = TimelineService(stores[i % 2])
        barrier.wait()
        recorded = timeline.record_message(
            message(), EntryKind.NOTE, f"U{i}", source=EntrySource.REACTION, event_id=f"Ev{i}"
        )
        results.append(recorded.created)

    threads = [threading.Thread(target=react, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 7 + [True]
    with stores[0].transaction() as session:
        assert session.scalar(select(func.count()).select_from(Entry).where(Entry.kind == EntryKind.NOTE)) == 1
    stores[1].dispose()


def test_run_of_show_and_tasks(store: Store) -> None:
    declare(store)
    ros = RunOfShowService(store)
    ros.set_plan(CHANNEL, ["restore backup", "diff prices"], "U1")
    ros.update_step(CHANNEL, 1, "start", "U1")
    step = ros.update_step(CHANNEL, 1, "done", "U1")
    assert step.status == StepStatus.DONE and step.started_at and step.done_at
    ros.update_step(CHANNEL, 2, "owner", "U1", owner="U9")
    with pytest.raises(NotFoundError, match="no step 3: the run of show has 2 steps"):
        ros.update_step(CHANNEL, 3, "start", "U1")
    ros.create_task(CHANNEL, TaskKind.ACTION, "U9", "add a prod guard", "U1")
    ros.create_task(CHANNEL, TaskKind.ACTION, "@bob", "write a runbook", "U1")
    assert [(t.number, t.owner_id) for t in ros.tasks(CHANNEL)] == [(1, "U9"), (2, "@bob")]
    summary = IncidentService(store).summary(CHANNEL)
    assert [s.owner_id for s in summary.steps] == [None, "U9"]


def test_status_changes(store: Store) -> None:
    declare(store)
    incidents = IncidentService(store)
    assert incidents.change_status(CHANNEL, IncidentStatus.RESOLVED, "U1").resolved_at is not None
    with pytest.raises(UsageError, match="already resolved"):
        incidents.change_status(CHANNEL, IncidentStatus.RESOLVED, "U1")
    closed = incidents.change_status(CHANNEL, IncidentStatus.CLOSED, "U1")
    assert closed.closed_at is not None
    with pytest.raises(UsageError, match="closed"):
        incidents.change_status(CHANNEL, IncidentStatus.OPEN, "U1")
