"""What every step of the approval flow works with: the store, the targets, the policy, the clock; and the one
place where it builds timeline entries (proposals, approvals, executions)."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.approvals.policy import Policy, production_target
from bot.scribe.entries import new_entry
from bot.store.models import Entry, EntryKind, EntrySource, Incident
from bot.store.session import Store
from bot.store.types import utcnow
from restore.targets import Target

Clock = Callable[[], datetime]
SYSTEM_USER = "rewind"  # the author of entries no person caused: supersessions, expiries, execution outcomes


@dataclass(eq=False, repr=False)  # identity semantics, and no repr that could print the store URL
class Context:
    """Mutable on purpose: the composition root wires `group_members` once Slack is up, tests swap the policy."""

    store: Store
    targets: Callable[[], dict[str, Target]]
    policy: Policy
    clock: Clock = utcnow
    group_members: Callable[[str], Sequence[str]] | None = None  # Slack's usergroups.users.list

    def target(self, name: str) -> Target:
        """A configured production target by name (proposals only ever aim at production)."""
        return production_target(self.targets(), name)


def timeline_entry(
    incident: Incident,
    kind: EntryKind,
    text: str,
    now: datetime,
    data: dict[str, Any],
    *,
    source: EntrySource = EntrySource.SYSTEM,
    user_id: str = SYSTEM_USER,
    user_name: str | None = None,
) -> Entry:
    """Every timeline entry the approval flow writes is built here, so how entries are made changes in one place."""
    return new_entry(
        incident,
        kind,
        author=user_id,
        author_name=user_name,
        text=text,
        occurred_at=now,
        recorded_at=now,
        source=source,
        data=data,
    )
