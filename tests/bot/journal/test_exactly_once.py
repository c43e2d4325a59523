"""Nothing lost or doubled: a sync SIGKILLed at any point and run again, and several processes syncing at once."""

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select, update

from bot.journal.service import get_journal, start_journal, sync_journal
from bot.journal.store import claim
from bot.store import Store
from bot.store.journal_models import Journal, JournalChunk, JournalTransaction
from bot.store.types import utcnow
from tests.bot.journal.helpers import run, targets_for

ROOT = Path(__file__).resolve().parents[3]

SYNC = """
import json, sys
from bot.journal.service import sync_journal
from bot.store import Store
from tests.bot.journal.helpers import targets_for
url, dsn, name, batch = sys.argv[1:]
result = sync_journal(Store(url), targets_for(dsn), name, batch=int(batch), peek_changes=3000)
print(result.model_dump_json())
"""


def sync_process(store: Store, dsn: str, name: str, batch: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", SYNC, store.url, dsn, name, str(batch)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def stored(store: Store) -> tuple[int, int, int]:
    with store.transaction() as session:
        chunks = session.execute(select(JournalChunk.commit_lsn, JournalChunk.seq, JournalChunk.changes)).all()
        changes = sum(n for _, _, n in chunks)
        # Each change's place in the WAL: chunks that overlapped would store a change twice.
        distinct = len({(lsn, seq) for lsn, first, n in chunks for seq in range(first, first + n)})
        txns = session.scalar(select(func.count()).select_from(JournalTransaction))
    return changes, distinct, txns


def expire_claim(store: Store, name: str) -> None:
    with store.transaction() as session:
        session.execute(
            update(Journal).where(Journal.name == name).values(claimed_until=utcnow() - timedelta(seconds=1))
        )


def traffic(dsn: str) -> int:
    """One big transaction (4000 changes) between many small ones: 4000 + 300 * 2 changes in 301 transactions."""
    run(dsn, "CREATE TABLE t (id int PRIMARY KEY, v text); ALTER TABLE t REPLICA IDENTITY FULL")
    return 4000 + 600


def test_sigkilled_sync_rerun_stores_every_change_once(store: Store, source_dsn: str, journal_name: str) -> None:
    expected = traffic(source_dsn)
    targets = targets_for(source_dsn)
    start_journal(store, targets, "prod", name=journal_name)
    small = [f"INSERT INTO t VALUES ({i}, 'a'); UPDATE t SET v = 'b' WHERE id = {i}" for i in range(300)]
    run(source_dsn, *small[:150], "INSERT INTO t SELECT g, 'big' FROM generate_series(1000, 4999) g", *small[150:])
    kills = 0
    for threshold in (200, 2000, 4200):
        proc = sync_process(store, source_dsn, journal_name, batch=50)
        while proc.poll() is None and stored(store)[0] < threshold:
            time.sleep(0.005)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
        # Killed with the claim held: a crashed process's claim expires; here it is expired at once.
        expire_claim(store, journal_name)
    assert kills >= 2
    final = sync_journal(store, targets, journal_name, claim_for=timedelta(minutes=1))
    assert final.synced
    changes, distinct, txns = stored(store)
    assert (changes, distinct, txns) == (expected, expected, 301)
    assert sync_journal(store, targets, journal_name).stats.changes == 0


def test_a_claimed_journal_is_synced_by_its_holder_only(store: Store, source_dsn: str, journal_name: str) -> None:
    run(source_dsn, "CREATE TABLE t (id int PRIMARY KEY); ALTER TABLE t REPLICA IDENTITY FULL")
    targets = targets_for(source_dsn)
    start_journal(store, targets, "prod", name=journal_name)
    run(source_dsn, "INSERT INTO t VALUES (1)")
    other = Store(store.url)  # a second bot process's store
    try:
        assert claim(other, get_journal(other, journal_name).id, "bot-b:42", timedelta(minutes=5))
        skipped = sync_journal(store, targets, journal_name, owner="bot-a:7")
        assert not skipped.synced and skipped.claimed_by == "bot-b:42" and stored(store)[0] == 0
        done = sync_journal(other, targets, journal_name, owner="bot-b:42")
        assert done.synced and done.stats.changes == 1
    finally:
        other.dispose()


def test_processes_syncing_at_once_store_each_change_once(store: Store, source_dsn: str, journal_name: str) -> None:
    run(source_dsn, "CREATE TABLE t (id int PRIMARY KEY, v text); ALTER TABLE t REPLICA IDENTITY FULL")
    targets = targets_for(source_dsn)
    start_journal(store, targets, "prod", name=journal_name)
    run(
        source_dsn,
        *[f"INSERT INTO t SELECT g, 'x' FROM generate_series({i * 100}, {i * 100 + 99}) g" for i in range(40)],
    )
    procs = [sync_process(store, source_dsn, journal_name, batch=100) for _ in range(3)]
    outputs = [p.communicate()[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    sync_journal(store, targets, journal_name)
    assert stored(store) == (4000, 4000, 40)
