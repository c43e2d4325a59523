"""Reminders on real stores (SQLite and Postgres): quiet-timeline nudges, due action items, and exactly-once claims
across threads and OS processes sharing one store."""

import multiprocessing
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from freezegun import freeze_time

from bot.scribe.reminders import Reminder, ReminderService, start_scheduler
from bot.store import Store, upgrade
from bot.store.models import Entry, Flag, Incident, Step, Task
from tests.pg import PgServer

T0 = datetime(2026, 3, 10, 10, 0, tzinfo=UTC)


def minutes(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'rewind.db'}"
        store = Store(url)
        upgrade(store)
        store.dispose()
        yield url
        return
    pg: PgServer = request.getfixturevalue("pg")
    name = pg.create_database("sched")
    url = pg.url_for(name)
    store = Store(url)
    upgrade(store)
    store.dispose()
    try:
        yield url
    finally:
        pg.drop_database(name)


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    store = Store(store_url)
    yield store
    store.dispose()


class Outbox:
    """The `post` callable: records (channel, text); optionally fails the first `fail` posts."""

    def __init__(self, fail: int = 0) -> None:
        self.posts: list[tuple[str, str]] = []
        self.fail = fail
        self.lock = threading.Lock()

    def __call__(self, channel: str, text: str) -> None:
        with self.lock:
            if self.fail:
                self.fail -= 1
                raise ConnectionError("slack is down")
            self.posts.append((channel, text))


def add_incident(store: Store, channel: str = "C1", *, declared: datetime = T0) -> int:
    with store.transaction() as s:
        incident = Incident(
            channel_id=channel, channel_name=f"inc-{channel.lower()}", title="t", declared_by="U1", declared_at=declared
        )
        s.add(incident)
        s.flush()
        return incident.id


def add_entry(store: Store, incident_id: int, when: datetime, text: str = "something", kind: str = "note") -> int:
    with store.transaction() as s:
        entry = Entry(incident_id=incident_id, kind=kind, text=text, author_id="U1", occurred_at=when, recorded_at=when)
        s.add(entry)
        s.flush()
        return entry.id


def add_action(store: Store, incident_id: int, number: int, due: datetime | None, status: str = "open") -> int:
    with store.transaction() as s:
        task = Task(
            incident_id=incident_id,
            kind="action",
            number=number,
            owner_id=f"U{number + 10}",
            text=f"follow-up {number}",
            status=status,
            created_by="U1",
            due_at=due,
        )
        s.add(task)
        s.flush()
        return task.id


def run_at(service: ReminderService, when: datetime) -> list[Reminder]:
    with freeze_time(when):
        return service.run_due()


def test_nudge_after_silence_once_per_quiet_period(store: Store) -> None:
    incident_id = add_incident(store)
    add_entry(store, incident_id, minutes(5))
    flag_entry = add_entry(store, incident_id, minutes(6), "Orders after 02:00 are not in the backup", "flag")
    with store.transaction() as s:
        s.add(Flag(incident_id=incident_id, number=1, entry_id=flag_entry))
        s.add(Step(incident_id=incident_id, position=1, title="Provision replica", owner_id="U2", status="in progress"))
        s.add(Step(incident_id=incident_id, position=2, title="Verify", status="done"))
    outbox = Outbox()
    service = ReminderService(store, outbox, nudge_after_minutes=30)

    assert run_at(service, minutes(35)) == []  # 29 min of silence
    [nudge] = run_at(service, minutes(37))
    assert nudge.kind == "nudge" and nudge.channel == "C1"
    assert "for 31 min" in nudge.text
    assert "#1 Orders after 02:00 are not in the backup" in nudge.text
    assert "1. Provision replica (<@U2>) — in progress" in nudge.text and "Verify" not in nudge.text
    assert run_at(service, minutes(40)) == []
    assert run_at(service, minutes(66)) == []  # 29 min since the nudge
    assert len(run_at(service, minutes(67))) == 1  # a second quiet period

    add_entry(store, incident_id, minutes(70))  # someone speaks: the clock restarts
    assert run_at(service, minutes(99)) == []
    assert len(run_at(service, minutes(100))) == 1
    assert len(outbox.posts) == 3


def test_no_nudge_for_resolved_incidents_or_before_the_period(store: Store) -> None:
    add_incident(store, "C1", declared=minutes(0))
    resolved = add_incident(store, "C2", declared=minutes(-120))
    with store.transaction() as s:
        s.get_one(Incident, resolved).status = "resolved"
    service = ReminderService(store, Outbox(), nudge_after_minutes=45)
    assert run_at(service, minutes(44)) == []
    assert [r.channel for r in run_at(service, minutes(45))] == ["C1"]


def test_deleted_entries_do_not_count_as_activity(store: Store) -> None:
    incident_id = add_incident(store)
    entry_id = add_entry(store, incident_id, minutes(20))
    with store.transaction() as s:
        s.get_one(Entry, entry_id).deleted_at = minutes(21)
    assert len(run_at(ReminderService(store, Outbox()), minutes(31))) == 1


def test_due_action_item_reminds_its_owner_once(store: Store) -> None:
    incident_id = add_incident(store)
    with store.transaction() as s:
        s.get_one(Incident, incident_id).status = "closed"  # actions outlive the incident
    add_action(store, incident_id, 1, due=minutes(120))
    add_action(store, incident_id, 2, due=None)
    add_action(store, incident_id, 3, due=minutes(60), status="done")
    outbox = Outbox()
    service = ReminderService(store, outbox)

    assert run_at(service, minutes(119)) == []
    [reminder] = run_at(service, minutes(120))
    assert reminder.kind == "action_due" and reminder.channel == "U11"
    assert reminder.text.endswith("Action item #1 from #inc-c1 is due (2026-03-10 12:00 UTC): follow-up 1")
    assert run_at(service, minutes(180)) == []
    assert run_at(service, minutes(60 * 24 * 30)) == []
    assert outbox.posts == [("U11", reminder.text)]


def test_a_failed_post_is_retried_on_the_next_run(store: Store) -> None:
    incident_id = add_incident(store)
    add_action(store, incident_id, 1, due=minutes(10))
    outbox = Outbox(fail=1)
    service = ReminderService(store, outbox)
    assert run_at(service, minutes(10)) == []  # the nudge is not due yet; the action post failed
    assert [r.kind for r in run_at(service, minutes(11))] == ["action_due"]
    assert len(outbox.posts) == 1


def test_two_threads_one_due_reminder_post_once(store_url: str) -> None:
    """Two services, each with its own engine (as two bot processes would have), racing on the same due rows."""
    stores = [Store(store_url), Store(store_url)]
    outbox = Outbox()
    services = [ReminderService(s, outbox) for s in stores]
    try:
        for round_ in range(8):
            incident_id = add_incident(stores[0], f"C{round_}", declared=minutes(-60))
            add_action(stores[0], incident_id, 1, due=minutes(0))
            barrier = threading.Barrier(2)

            def race(service: ReminderService, barrier: threading.Barrier, now: datetime) -> None:
                barrier.wait()
                service.run_due(now)

            threads = [threading.Thread(target=race, args=(s, barrier, minutes(round_))) for s in services]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=30)
            # one nudge for this round's incident and one action reminder, whoever won each
            assert len(outbox.posts) == 2 * (round_ + 1), outbox.posts
    finally:
        for s in stores:
            s.dispose()


def _process_run(url: str, now: datetime, barrier: Any, results: Any) -> None:
    """One bot process: its own engine and service; reports the ids it posted."""
    store = Store(url)
    posted: list[str] = []
    service = ReminderService(store, lambda channel, text: posted.append(channel))
    barrier.wait()
    reminders = service.run_due(now)
    results.put([(r.kind, r.task_id or r.incident_id) for r in reminders])
    store.dispose()


def test_two_processes_post_each_due_reminder_once(store_url: str) -> None:
    store = Store(store_url)
    incident_ids = [add_incident(store, f"C{i}", declared=minutes(-60)) for i in range(5)]
    task_ids = [add_action(store, incident_ids[0], n, due=minutes(-1)) for n in range(1, 31)]
    store.dispose()

    # fork starts in milliseconds with everything imported; each child still opens its own engine
    ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    processes = [ctx.Process(target=_process_run, args=(store_url, minutes(0), barrier, results)) for _ in range(2)]
    for p in processes:
        p.start()
    posted = [item for _ in processes for item in results.get(timeout=60)]
    for p in processes:
        p.join(timeout=30)
        assert p.exitcode == 0

    assert sorted(posted) == sorted([("action_due", t) for t in task_ids] + [("nudge", i) for i in incident_ids])


def test_start_scheduler_runs_the_service_periodically(store: Store) -> None:
    incident_id = add_incident(store, declared=datetime.now(UTC))
    add_action(store, incident_id, 1, due=datetime.now(UTC) - timedelta(minutes=1))
    outbox = Outbox()
    scheduler = start_scheduler(ReminderService(store, outbox), interval_s=0.2)
    try:
        deadline = time.monotonic() + 10
        while not outbox.posts and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # a few more ticks: still one post
    finally:
        scheduler.shutdown(wait=True)
    assert [channel for channel, _ in outbox.posts] == ["U11"]
