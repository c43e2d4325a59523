"""The agent's tools: read-only questions about the incident's databases, and proposals for people to approve.

Each tool is one function here, registered with `@tool`: its docstring is the description the agent reads, its typed
parameters (with descriptions) are its JSON schema, and its body calls a restore-work or approvals service and returns
a payload in the shape of the matching `rewind … --json` command. The services enforce the rules for every caller:
the read-only guard and READ ONLY transaction, never production for a query or a typed `where`, proposals aim only at
production and wait for people. `Agent.call` adds what every tool shares: the size cap, the envelope and the audit log.

No tool approves or executes: those are decisions people make in Slack, and the approvals service refuses an agent as
an approver whatever reaches it. Adding a tool (the change journal's, say) is one more `@tool` function.
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

from pydantic import Field

from bot.agents.audit import FAILED, OK, REFUSED, record_call
from bot.agents.results import CAP_BYTES, ToolResult, cap_text, fit, jsonable
from bot.approvals.policy import sql_sha256
from bot.errors import UsageError
from bot.journal.service import journal_log, sync_journal
from bot.journal.undo import plan_journal_undo
from bot.restore_work import reads
from bot.restore_work.targets import Sides
from bot.services import Services
from restore.errors import RewindError
from restore.targets import TargetRole, mask_dsn

log = logging.getLogger("rewind.agents")

AGENT_ID = "agent:mcp"  # the proposer of what an agent proposes; bot.approvals.policy.is_agent refuses it as approver
AGENT_NAME = "Rewind agent (MCP)"
QUERY_TIMEOUT_S = 10


@dataclass
class Reply:
    """What a tool body returns: the payload, warnings, and what the audit log should link the call to."""

    payload: Any
    warnings: list[str] = field(default_factory=list)
    incident_id: int | None = None
    proposal_id: int | None = None


ToolFunction = Callable[..., Reply]


@dataclass(frozen=True)
class ToolSpec:
    name: str
    fn: ToolFunction
    read_only: bool  # false for the one tool that records something (a proposal); none writes to a target
    whole: frozenset[str]  # payload fields never cut part-way to fit the cap (SQL a person might run)

    @property
    def description(self) -> str:
        return " ".join((self.fn.__doc__ or "").split())


TOOLS: dict[str, ToolSpec] = {}  # filled once at import by @tool, read-only afterwards


def tool(*, read_only: bool = True, whole: tuple[str, ...] = ()) -> Callable[[ToolFunction], ToolFunction]:
    def register(fn: ToolFunction) -> ToolFunction:
        TOOLS[fn.__name__] = ToolSpec(fn.__name__, fn, read_only, frozenset(whole))
        return fn

    return register


class Agent:
    """One agent's session: the services it calls, who it is in the audit log and in proposals, its result cap."""

    def __init__(
        self, services: Services, *, actor: str = AGENT_ID, name: str = AGENT_NAME, cap: int = CAP_BYTES
    ) -> None:
        self.services = services
        self.actor = actor
        self.name = name
        self.cap = cap

    # --- which incident --------------------------------------------------------------------------------------------

    def incident(self) -> tuple[int, str]:
        """(incident id, channel id) the agent works in: REWIND_AGENT_CHANNEL, else the only open incident.

        Never a guess among several: a proposal posted in the wrong channel would be approved by the wrong people."""
        incidents = self.services.incidents
        configured = self.services.settings.agent_channel
        if configured:
            found = incidents.find(configured)
            if found is None:
                raise UsageError(
                    f"REWIND_AGENT_CHANNEL is {configured}, which is not an incident channel. Declare the incident "
                    "there first (/inc declare), or set REWIND_AGENT_CHANNEL to the incident channel's id."
                )
            return found.id, found.channel_id
        open_ones = incidents.open_incidents()
        if len(open_ones) == 1:
            return open_ones[0].id, open_ones[0].channel_id
        if not open_ones:
            raise UsageError(
                "There is no open incident to work in. A person declares one in Slack (/inc declare <title>), or "
                "set REWIND_AGENT_CHANNEL to the incident channel's id."
            )
        names = ", ".join(f"#{i.channel_name} ({i.channel_id})" for i in open_ones)
        raise UsageError(f"Several incidents are open ({names}); set REWIND_AGENT_CHANNEL to the one to work in.")

    def sides(self, table: str, where: str | None, *, on_live: bool) -> tuple[int, Sides]:
        incident_id, channel = self.incident()
        return incident_id, reads.checked_sides(self.services.jobs.targets, channel, table, where, on_live=on_live)

    # --- calling a tool ---------------------------------------------------------------------------------------------

    def call(self, name: str, **arguments: Any) -> ToolResult:
        """Run one tool: refusals come back as `ok: false` with the service's message; every call is audited."""
        spec = TOOLS.get(name)
        if spec is None:
            error = f"There is no tool {name!r}; tools: {', '.join(TOOLS)}."
            self.record_unreached(name, arguments, error)
            return ToolResult(tool=name, ok=False, error=error, cap=cap_text(self.cap))
        started = time.perf_counter()
        reply: Reply | None = None
        try:
            reply = spec.fn(self, **arguments)
        except RewindError as exc:
            outcome, error = REFUSED, mask_dsn(str(exc))
        except Exception as exc:  # a bug or a lost connection: the agent gets a line, the log the traceback
            log.exception("tool %s failed", name)
            outcome, error = FAILED, f"{type(exc).__name__}: {mask_dsn(str(exc))}"
        else:
            outcome, error = OK, None
        cut: list[str] = []
        payload = None
        if reply is not None:
            payload, cut = fit(reply.payload, self.cap, whole=spec.whole)
        record_call(
            self.services.store,
            actor=self.actor,
            tool=name,
            arguments=jsonable(arguments),
            outcome=outcome,
            detail=error or ("; ".join(cut) if cut else None),
            seconds=time.perf_counter() - started,
            incident_id=reply.incident_id if reply else None,
            proposal_id=reply.proposal_id if reply else None,
        )
        return ToolResult(
            tool=name,
            ok=error is None,
            result=payload,
            error=error,
            warnings=reply.warnings if reply else [],
            truncated=bool(cut),
            cap=cap_text(self.cap),
            cut=cut,
        )

    def record_unreached(self, name: str, arguments: dict[str, Any], detail: str) -> None:
        """A call the protocol layer refused before any tool ran (unknown tool, arguments against the schema)."""
        record_call(
            self.services.store,
            actor=self.actor,
            tool=name[:64],
            arguments=jsonable(arguments),
            outcome=REFUSED,
            detail=detail,
            seconds=0.0,
        )


# --- parameters the tools share ------------------------------------------------------------------------------------

Table = Annotated[str, Field(description="the table, e.g. products or public.products", min_length=1)]
Where = Annotated[
    str | None,
    Field(
        description="an SQL condition on the table's rows, e.g. kind = 'tea'. It runs only on the backup (and, for a "
        "diff, on a replica of production), read-only; never on production"
    ),
]
Keys = Annotated[
    list[list[Any]] | None,
    Field(description="the root rows' keys, one list of key values per row, e.g. [[1], [2]]; or use deleted=true"),
]
Deleted = Annotated[
    bool, Field(description="the roots are the rows deleted since the backup (optionally those matching `where`)")
]

_AGENT_MAY = {
    TargetRole.PRODUCTION: "propose SQL for people to approve (rewind_propose); never queried",
    TargetRole.REPLICA: "read-only queries (rewind_query)",
    TargetRole.BACKUP: "read-only queries (rewind_query)",
}


def _roots_given(keys: list[list[Any]] | None, deleted: bool) -> None:
    if (keys is None) == (not deleted):
        raise UsageError("Give either keys (a list of key lists, e.g. [[1], [2]]) or deleted=true, not both.")


# --- the tools -----------------------------------------------------------------------------------------------------


@tool()
def rewind_targets(agent: Agent) -> Reply:
    """The configured databases, their roles (production, replica, backup) and what an agent may do with each; which
    backup and live database this incident compares; and a warning for each read-only target whose login can write.
    Start here."""
    targets = agent.services.jobs.targets
    listed = [{"name": t.name, "role": t.role.value, "agent_may": _AGENT_MAY[t.role]} for t in targets.listed()]
    payload: dict[str, Any] = {"targets": listed, "incident": None, "backup": None, "live": None}
    incident_id = None
    try:
        incident_id, channel = agent.incident()
        payload["incident"] = channel
        sides = targets.sides(channel)
        payload["backup"], payload["live"] = sides.backup_label, sides.live.name
    except RewindError as exc:
        payload["not_ready"] = mask_dsn(str(exc))
    return Reply(payload, warnings=targets.write_warnings(), incident_id=incident_id)


@tool()
def rewind_query(
    agent: Agent,
    target: Annotated[str, Field(description="a replica or backup target's name (see rewind_targets)")],
    sql: Annotated[str, Field(description="read-only SQL: SELECT, VALUES, TABLE, EXPLAIN without ANALYZE, or SHOW")],
    limit: Annotated[int, Field(description="rows to return at most", ge=1, le=1000)] = 100,
) -> Reply:
    """Run a read-only query on a replica or backup target, never on production. The SQL must be classified read-only
    by the parser and then runs in a READ ONLY transaction with a timeout; either check refuses. Returns the columns,
    the rows (capped) and notes on what was cut, as `rewind query --json` does."""
    found, result = reads.query(
        agent.services.jobs.targets, target, sql, limit=limit, timeout_s=QUERY_TIMEOUT_S, max_bytes=agent.cap
    )
    return Reply({**jsonable(result), "notes": result.notes(), "target": found.name})


@tool()
def rewind_diff(agent: Agent, table: Table, where: Where = None) -> Reply:
    """Compare one table between the incident's backup and live (production) by key: the keys of rows deleted, added
    and changed (with the changed columns), as `rewind diff --json`. With `where`, only matching rows are compared;
    that needs a replica of production (REWIND_LIVE_REPLICA_TARGET), since a typed condition never runs on
    production."""
    incident_id, sides = agent.sides(table, where, on_live=True)
    return Reply(reads.diff(sides, table, where).model_dump(mode="json"), incident_id=incident_id)


@tool()
def rewind_deps(agent: Agent, table: Table, keys: Keys = None, deleted: Deleted = False, where: Where = None) -> Reply:
    """From root rows of a table (given keys, or the rows deleted since the backup), every backup row that references
    them at any depth and the parents they need, each classified against live as missing, present or changed, as
    `rewind deps --json`. Live is read by key only."""
    _roots_given(keys, deleted)
    incident_id, sides = agent.sides(table, where, on_live=False)
    roots = reads.roots(sides, table, where, keys)
    if not roots:
        empty = {"root_table": table, "rows": [], "counts": {}, "roots_not_in_backup": 0}
        return Reply(empty, warnings=["No root rows: live has every row the backup has."], incident_id=incident_id)
    report = reads.deps(sides, table, roots).report()
    return Reply(report.model_dump(mode="json"), incident_id=incident_id)


@tool()
def rewind_gap(agent: Agent, table: Table, keys: Keys = None, deleted: Deleted = False, where: Where = None) -> Reply:
    """Rows in live created after the backup that reference the root rows (given keys, or the rows deleted since the
    backup): data the backup cannot give back, as `rewind gap --json`."""
    _roots_given(keys, deleted)
    incident_id, sides = agent.sides(table, where, on_live=False)
    roots = reads.roots(sides, table, where, keys)
    if not roots:
        return Reply(
            {"backup_time": None, "created_after_backup": [], "ids_not_in_backup": [], "counts": {}},
            warnings=["No root rows: live has every row the backup has."],
            incident_id=incident_id,
        )
    return Reply(reads.gap(sides, table, roots).model_dump(mode="json"), incident_id=incident_id)


@tool(whole=("sql",))
def rewind_plan(
    agent: Agent,
    table: Table,
    keys: Keys = None,
    deleted: Deleted = False,
    where: Where = None,
    with_dependents: Annotated[bool, Field(description="also restore the rows that reference the roots")] = False,
    revert: Annotated[
        list[str],
        Field(description="changed columns to set back to backup values, e.g. ['payments.customer_id']"),
    ] = [],  # noqa: B006 - the SDK reads the default into the schema; it is never mutated
) -> Reply:
    """Plan the restore of root rows (given keys, or the rows deleted since the backup) from the backup into live:
    one SQL script in one transaction, with the rows it expects per table. Writes nothing to any database. To have it
    run, pass the SQL to rewind_propose: people approve it in Slack."""
    _roots_given(keys, deleted)
    incident_id, sides = agent.sides(table, where, on_live=False)
    roots = reads.roots(sides, table, where, keys)
    command = f"rewind mcp: rewind_plan {table}" + (" deleted" if deleted else f" keys={len(roots)}")
    command += (f" where {where}" if where else "") + (" with dependents" if with_dependents else "")
    payload: dict[str, Any] = {"target": sides.live.name, "backup": sides.backup_label, "roots": len(roots)}
    if not roots:
        payload |= {"sql": None, "sql_sha256": None, "counts": {}, "steps": [], "backup_time": None}
        nothing = ["Nothing to restore: live has every row the backup has."]
        return Reply(payload, warnings=nothing, incident_id=incident_id)
    plan = reads.plan(sides, table, roots, with_dependents=with_dependents, revert=revert, command=command)
    payload |= {
        "backup_time": plan.backup_time.isoformat() if plan.backup_time else None,
        "counts": plan.counts,
        "steps": [step.model_dump() for step in plan.steps],
        "sql_sha256": None if plan.empty else sql_sha256(plan.sql),
        "sql": None if plan.empty else plan.sql,
    }
    warnings = ["Nothing to restore: every row it needs is already in live."] if plan.empty else []
    return Reply(payload, warnings=warnings, incident_id=incident_id)


@tool(read_only=False)
def rewind_propose(
    agent: Agent,
    target: Annotated[str, Field(description="the production target the SQL is for (see rewind_targets)")],
    sql: Annotated[str, Field(description="the exact SQL, e.g. the sql of rewind_plan", min_length=1)],
    reason: Annotated[str, Field(description="one line for the people who approve: what it does and why")],
) -> Reply:
    """Propose SQL for production to the people in the incident's Slack channel. It is dry-run (rolled back), bound
    to the SHA-256 of its exact text, and posted for approval; it runs only after enough people approve it there. An
    agent can never approve or execute a proposal."""
    incident_id, channel = agent.incident()
    if not reason.strip():
        raise UsageError("Give a reason: one line for the people who approve, saying what the SQL does and why.")
    summary = " ".join(reason.split())[:200] + f" (proposed by {agent.name})"
    proposal = agent.services.jobs.proposals.propose_now(channel, agent.actor, agent.name, target, sql, summary=summary)
    payload = {
        "proposal": proposal.number,
        "status": proposal.status,
        "target": proposal.target,
        "sql_sha256": proposal.sql_sha256,
        "channel": proposal.channel_id,
        "message_ts": proposal.message_ts,
        "approvals_required": proposal.approvals_required,
        "expires_at": proposal.expires_at.isoformat(),
        "dry_run": proposal.dry_run,
    }
    if proposal.pending:
        note = (
            f"Proposal #{proposal.number} waits for {proposal.approvals_required} approvals from people in Slack; it "
            "runs only then. An agent can never approve or execute it."
        )
    else:
        note = f"Proposal #{proposal.number} is {proposal.status}: its dry run failed, so it can never be approved."
    return Reply(payload, warnings=[note], incident_id=incident_id, proposal_id=proposal.id)


Moment = Annotated[datetime | None, Field(description="an ISO 8601 time with its zone, e.g. 2026-01-22T04:10:00Z")]
Tables = Annotated[list[str], Field(description="only these tables, e.g. ['products']; empty: every table")]


@tool()
def rewind_journal_log(agent: Agent, since: Moment = None, until: Moment = None, tables: Tables = []) -> Reply:  # noqa: B006
    """The change journal's transactions (read from production's WAL, synced first): each one's xid, commit time,
    and per table its inserts, updates and deletes, as `rewind journal log --json`. Use it to find the transactions a
    bad script made, then rewind_undo_plan them."""
    name = agent.services.jobs.journal.journal_name()
    sync_journal(agent.services.store, agent.services.settings.all_targets(), name)
    log = journal_log(agent.services.store, name, since=since, until=until, tables=tables)
    return Reply({"journal": name, **log.model_dump(mode="json")})


@tool(whole=("sql",))
def rewind_undo_plan(
    agent: Agent,
    xids: Annotated[list[int], Field(description="transaction ids as rewind_journal_log lists them")] = [],  # noqa: B006
    since: Moment = None,
    until: Moment = None,
    tables: Tables = [],  # noqa: B006
) -> Reply:
    """Plan the inverse of chosen transactions from the change journal (by xid, or every transaction that committed
    between since and until): one SQL script that re-inserts what they deleted, sets back what they updated and
    deletes what they inserted, each statement guarded by the value they left, with the rows it expects per table and
    the conflicts (rows changed since, left as they are). Writes nothing; pass the SQL to rewind_propose."""
    if not xids and not (since and until):
        raise UsageError("Give xids (from rewind_journal_log), or both since and until.")
    name = agent.services.jobs.journal.journal_name()
    settings = agent.services.settings
    sync_journal(agent.services.store, settings.all_targets(), name)
    undo = plan_journal_undo(
        agent.services.store,
        settings.all_targets(),
        name,
        xids=xids,
        since=since,
        until=until,
        tables=tables,
        command="rewind mcp: rewind_undo_plan",
    )
    plan = undo.plan.plan
    payload = {
        **undo.result.model_dump(mode="json"),
        "target": agent.services.jobs.targets.live().name,
        "sql_sha256": None if plan.empty else sql_sha256(plan.sql),
        "sql": None if plan.empty else plan.sql,
    }
    warnings = (
        [f"{len(undo.result.conflicts)} row(s) changed since: left as they are."] if undo.result.conflicts else []
    )
    return Reply(payload, warnings=warnings)


__all__ = ["AGENT_ID", "AGENT_NAME", "TOOLS", "Agent", "Reply", "ToolSpec", "tool"]
