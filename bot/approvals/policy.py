"""Who may approve and where proposals may aim: the policy, the eligible users, the production target, the SQL hash."""

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from bot.errors import UsageError
from restore.errors import TargetError
from restore.targets import Target, TargetRole

AGENT_PREFIX = "agent:"  # user ids of programs that act through Rewind's agent interface, e.g. "agent:mcp"


def is_agent(user_id: str) -> bool:
    """An agent may propose; it never approves, revokes or rejects, whatever the policy says."""
    return user_id.startswith(AGENT_PREFIX)


def sql_sha256(sql_text: str) -> str:
    """The hash a proposal and its approvals are bound to: of the exact text, byte for byte (UTF-8)."""
    return hashlib.sha256(sql_text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Policy:
    """Who may approve: N distinct users, from `approvers` if set (else anyone), never the proposer."""

    approvals_required: int = 2
    approvers: tuple[str, ...] = ()
    approver_group: str | None = None  # a Slack user group; its members at proposal time may approve too
    ttl: timedelta = timedelta(minutes=30)
    statement_timeout_s: float = 30
    lock_timeout_s: float = 5

    def who(self) -> str:
        if self.approvers:
            return "one of " + ", ".join(f"<@{u}>" for u in self.approvers) + " (not the proposer)"
        return "anyone in the channel but the proposer"


def eligible_users(policy: Policy, group_members: Callable[[str], Sequence[str]] | None) -> list[str]:
    """Who may approve a proposal made now: the configured users plus the group's current members.

    An empty list means anyone but the proposer, so a configured group that yields nobody is an error,
    never a silent widening to everyone."""
    users = list(policy.approvers)
    group = policy.approver_group
    if group:
        if group_members is None:
            raise UsageError(f"REWIND_APPROVER_GROUP {group} is set but Slack user groups can't be read here.")
        members = [u for u in group_members(group) if u not in users]
        if not users and not members:
            raise UsageError(
                f"User group {group} has no members, so nobody could approve. Add people to it, or set "
                "REWIND_APPROVERS."
            )
        users += members
    return users


def production_target(targets: dict[str, Target], name: str) -> Target:
    """A configured production target by name (proposals only ever aim at production)."""
    target = targets.get(name)
    if target is None:
        known = ", ".join(f"{t.name} ({t.role.value})" for t in targets.values()) or "none (set REWIND_TARGETS)"
        raise TargetError(f"Unknown target {name!r}. Configured targets: {known}.")
    if target.role is not TargetRole.PRODUCTION:
        raise TargetError(
            f"{target.name} is a {target.role.value} target: it is read-only. Proposals aim at a production "
            f"target; ask {target.name} questions with `/inc query {target.name} <SELECT …>`."
        )
    return target
