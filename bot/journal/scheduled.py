"""What `rewind run` does for each journal on a schedule: sync it, and warn when its slot keeps too much WAL.

Every bot process runs the same job. The sync is claimed in the store (`sync_journal`), so each journal is synced
by one process at a time; the warning is claimed too (a conditional UPDATE of `last_alert_at`), so one process posts
it, and again only after `realert_after` while the slot stays over the limit.
"""

import logging
from collections.abc import Callable, Mapping
from datetime import timedelta

from sqlalchemy import or_, update

from bot.journal.service import WalAlert, journal_names, retained_wal_over_limit, sync_journal
from bot.store.journal_models import Journal
from bot.store.session import Store
from bot.store.types import utcnow
from restore.errors import RewindError
from restore.targets import Target, mask_dsn

log = logging.getLogger("rewind.journal")

REALERT_AFTER = timedelta(hours=1)


class JournalKeeper:
    def __init__(
        self,
        store: Store,
        targets: Callable[[], Mapping[str, Target]],
        warn: Callable[[WalAlert], None] | None,
        limit_bytes: int,
        realert_after: timedelta = REALERT_AFTER,
    ) -> None:
        self.store, self.targets, self.warn = store, targets, warn
        self.limit_bytes, self.realert_after = limit_bytes, realert_after

    def run_due(self) -> None:
        """Each journal in turn; one failing (production unreachable, say) never stops the others."""
        for name in journal_names(self.store):
            try:
                self.keep(name)
            except RewindError as exc:
                log.warning("journal %s: %s", name, mask_dsn(str(exc)))

    def keep(self, name: str) -> WalAlert | None:
        try:
            sync_journal(self.store, self.targets(), name)
        except RewindError as exc:  # a vanished slot fails the sync: exactly what the warning below is for
            log.warning("journal %s: sync failed: %s", name, mask_dsn(str(exc)))
        alert = retained_wal_over_limit(self.store, self.targets(), name, self.limit_bytes)
        if alert is not None and self.warn is not None and self._claim_alert(name):
            self.warn(alert)
        return alert

    def _claim_alert(self, name: str) -> bool:
        now = utcnow()
        with self.store.transaction() as session:
            claimed = session.execute(
                update(Journal)
                .where(
                    Journal.name == name,
                    Journal.stopped_at.is_(None),
                    or_(Journal.last_alert_at.is_(None), Journal.last_alert_at < now - self.realert_after),
                )
                .values(last_alert_at=now),
                execution_options={"synchronize_session": False},
            )
            return claimed.rowcount == 1  # type: ignore[attr-defined]
