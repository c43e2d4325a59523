"""`rewind run`'s journal job: every journal synced, and the WAL warning posted once by one of several processes."""

import threading
from datetime import timedelta

import psycopg

from bot.journal.scheduled import JournalKeeper
from bot.journal.service import WalAlert, journal_log, start_journal
from bot.store import Store
from tests.bot.journal.helpers import SCHEMA, run, targets_for


def test_keepers_sync_every_journal_and_one_warns_when_the_slot_is_gone(
    store: Store, source_dsn: str, journal_name: str
) -> None:
    run(source_dsn, SCHEMA)
    targets = targets_for(source_dsn)
    start_journal(store, targets, "prod", name=journal_name)
    [xid] = run(source_dsn, "INSERT INTO customers VALUES (1, 'Ada', NULL)")
    warnings: list[WalAlert] = []
    keepers = [JournalKeeper(store, lambda: targets, warnings.append, limit_bytes=1 << 30) for _ in range(2)]

    threads = [threading.Thread(target=k.run_due) for k in keepers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [t.xid for t in journal_log(store, journal_name).transactions] == [xid]
    assert warnings == []

    with psycopg.connect(source_dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_drop_replication_slot(%s)", (f"rewind_{journal_name}",))
    for keeper in keepers:
        keeper.run_due()
    assert len(warnings) == 1 and warnings[0].slot_missing and warnings[0].journal == journal_name
    keepers[0].run_due()
    assert len(warnings) == 1  # not repeated within the hour

    JournalKeeper(store, lambda: targets, warnings.append, limit_bytes=1 << 30, realert_after=timedelta(0)).run_due()
    assert len(warnings) == 2
