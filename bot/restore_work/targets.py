"""Which databases restore work compares, and which one a read-only query may run on.

The rule `sides()` applies:
- *backup*: the replica most recently provisioned in this incident by `/inc replica up`, else REWIND_BACKUP_TARGET,
  else the only target with role `backup`;
- *live*: REWIND_LIVE_TARGET, else the only `production` target. Proposals aim at it, and it is read by key only;
- *live_read*: where a diff's `where` runs on the live side: the `replica` named by REWIND_LIVE_REPLICA_TARGET, else
  live itself.

A `where` typed by a person never runs on production (`check_where`): it runs only on replica and backup targets, in
READ ONLY transactions, after the parser classified it read-only. deps, gap and plan evaluate it on the backup alone
and look live rows up by key, with SQL Rewind writes itself; a diff evaluates it on both sides, so it needs
REWIND_LIVE_REPLICA_TARGET. The rule is here, in the service every caller goes through (Slack, the shell, an agent),
not in a handler.
"""

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from bot.config import Settings
from bot.errors import UsageError
from bot.scribe.incidents import require_incident
from bot.store.models import Entry, EntryKind
from bot.store.session import Store
from restore import replica as replicas
from restore.errors import RewindError
from restore.fence import write_check, write_warning
from restore.guard import require_read_only
from restore.targets import Target, TargetRole, require_role

WHERE_ROLES = (TargetRole.REPLICA, TargetRole.BACKUP)  # the only targets a typed `where` may run on


@dataclass(frozen=True)
class Sides:
    backup: Target
    live: Target  # production: proposals aim here; read only by key
    live_read: Target  # where a `where` may run on the live side: a replica of production, else production itself
    backup_label: str


class RestoreTargets:
    """The configured targets and backups, resolved for one incident."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store

    def listed(self) -> list[Target]:
        return sorted(self.settings.all_targets().values(), key=lambda t: (t.role.value, t.name))

    def write_warnings(self) -> list[str]:
        """For each replica or backup target whose login can write: a warning that says how to make it read-only."""
        checks = [write_check(t) for t in self.listed() if t.role is not TargetRole.PRODUCTION and t.dsn]
        return [warning for warning in map(write_warning, checks) if warning]

    def query_target(self, name: str) -> Target:
        targets = self.settings.all_targets()
        if name not in targets:
            known = ", ".join(f"{t.name} ({t.role.value})" for t in self.listed()) or "none (set REWIND_TARGETS)"
            raise UsageError(f"Unknown target {name!r}. Configured targets: {known}.", "/inc targets")
        target = targets[name]
        if target.role is TargetRole.PRODUCTION:
            readable = [t.name for t in self.listed() if t.role is not TargetRole.PRODUCTION]
            hint = f" Ask {' or '.join(readable)} instead." if readable else " Configure a replica or backup target."
            raise UsageError(f"{name} is a production target: a query never runs there.{hint}", "/inc targets")
        return target

    def sides(self, channel_id: str) -> Sides:
        """The backup and live targets of this incident (see the module's docstring for the rule)."""
        live = self._live()
        live_read = live
        replica_name = self.settings.live_replica_target
        if replica_name:
            live_read = require_role(self._configured(replica_name, "REWIND_LIVE_REPLICA_TARGET"), TargetRole.REPLICA)
        record = self._incident_replica(channel_id)
        if record is not None:
            backup = Target(name=f"replica {record.name}", dsn=record.dsn, role=TargetRole.BACKUP)
            return Sides(backup, live, live_read, f"replica {record.name}")
        if self.settings.backup_target:
            backup = self._configured(self.settings.backup_target, "REWIND_BACKUP_TARGET")
            require_role(backup, TargetRole.BACKUP, TargetRole.REPLICA)
            return Sides(backup, live, live_read, backup.name)
        backups = [t for t in self.listed() if t.role is TargetRole.BACKUP]
        if len(backups) == 1:
            return Sides(backups[0], live, live_read, backups[0].name)
        names = ", ".join(sorted(self.settings.backups)) or "none configured (REWIND_BACKUPS)"
        raise UsageError(
            "There is no backup to compare with in this incident. Provision one with `/inc replica up <backup>` "
            f"(backups: {names}), or name a backup target in REWIND_BACKUP_TARGET.",
            "/inc replica up " + (sorted(self.settings.backups)[0] if self.settings.backups else "nightly"),
        )

    def backup_dump(self, name: str) -> Path:
        if name not in self.settings.backups:
            known = ", ".join(sorted(self.settings.backups)) or "none (set REWIND_BACKUPS to {name: path})"
            raise UsageError(f"Unknown backup {name!r}. Configured backups: {known}.", "/inc replica up <backup>")
        path = Path(self.settings.backups[name])
        if path.is_dir() and not (path / "toc.dat").exists():  # a directory of dumps: the newest one
            dumps = sorted((p for p in path.iterdir() if not p.name.startswith(".")), key=lambda p: p.stat().st_mtime)
            if not dumps:
                raise UsageError(f"Backup {name!r} is a directory with no dumps in it ({path.name}).")
            return dumps[-1]
        return path

    def copy_source(self, name: str) -> Target:
        """A configured target a replica may be copied from: a replica of production, or production itself (read
        only, one snapshot). A DSN is never accepted here: targets exist only in configuration."""
        target = self.settings.all_targets().get(name)
        if target is None:
            known = ", ".join(t.name for t in self.listed() if t.role is not TargetRole.BACKUP) or "none"
            raise UsageError(f"Unknown target {name!r}; copies come from: {known}.", "/inc targets")
        return require_role(target, TargetRole.REPLICA, TargetRole.PRODUCTION)

    def verifiable_backup(self, name: str) -> Target | Path:
        """A configured backup dump by name (REWIND_BACKUPS), else a backup target."""
        if name in self.settings.backups:
            return self.backup_dump(name)
        target = self.settings.all_targets().get(name)
        if target is None:
            dumps = ", ".join(sorted(self.settings.backups)) or "none"
            backups = ", ".join(t.name for t in self.listed() if t.role is TargetRole.BACKUP) or "none"
            raise UsageError(
                f"Unknown backup {name!r}. Backups: {dumps}; backup targets: {backups}.", "/inc backup verify nightly"
            )
        return require_role(target, TargetRole.BACKUP, TargetRole.REPLICA)

    def live(self) -> Target:
        """The production target restore work compares against and proposals aim at."""
        return self._live()

    def _live(self) -> Target:
        if self.settings.live_target:
            target = self._configured(self.settings.live_target, "REWIND_LIVE_TARGET")
            return require_role(target, TargetRole.PRODUCTION)
        production = [t for t in self.listed() if t.role is TargetRole.PRODUCTION]
        if len(production) == 1:
            return production[0]
        found = ", ".join(t.name for t in production) or "none"
        raise UsageError(
            f"Restore work needs one live (production) target; found {found}. Set REWIND_LIVE_TARGET to its name "
            'and REWIND_TARGETS to e.g. {"prod": {"dsn": "postgresql://…", "role": "production"}}.'
        )

    def _configured(self, name: str, variable: str) -> Target:
        target = self.settings.all_targets().get(name)
        if target is None:
            raise UsageError(f"{variable} names {name!r}, which is not in REWIND_TARGETS.")
        return target

    def _incident_replica(self, channel_id: str) -> replicas.ReplicaRecord | None:
        with self.store.transaction() as session:
            incident = require_incident(session, channel_id)
            entries = session.scalars(
                select(Entry)
                .where(Entry.incident_id == incident.id, Entry.kind == EntryKind.RESTORE, Entry.deleted_at.is_(None))
                .order_by(Entry.id.desc())
            )
            names = [e.data["replica"] for e in entries if e.data and e.data.get("operation") == "replica up"]
        for name in names:
            try:
                return replicas.get_record(name)
            except RewindError:
                continue  # taken down since
        return None


def check_where(sides: Sides, table: str, where: str | None, *, on_live: bool) -> None:
    """Refuse a `where` that would run on anything but a replica or a backup, or that the parser does not classify as
    read-only. `on_live`: the operation evaluates it on the live side too (a diff), not only on the backup."""
    if where is None or not where.strip():
        return
    require_read_only(f"SELECT 1 FROM {table} WHERE ({where})")  # the READ ONLY transaction comes on top, in the job
    if on_live and sides.live_read.role not in WHERE_ROLES:
        raise UsageError(
            "A `where` typed in Slack only runs on replica and backup targets, and a diff applies it to live "
            "too. Set REWIND_LIVE_REPLICA_TARGET to a replica of production, or ask "
            f"`/inc deps {table} deleted where …` (which reads live by key only).",
            f"/inc diff {table}",
        )
    if sides.backup.role not in WHERE_ROLES:  # sides() never picks one; Sides built any other way is checked too
        raise UsageError(
            f"A `where` only runs on replica and backup targets, and {sides.backup.name} is a "
            f"{sides.backup.role.value} target. Name a backup or replica target in REWIND_BACKUP_TARGET."
        )


__all__ = ["WHERE_ROLES", "RestoreTargets", "Sides", "check_where"]
