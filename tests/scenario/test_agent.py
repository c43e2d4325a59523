"""An agent on Rewind, end to end: `rewind mcp` started as a subprocess and driven through the official MCP SDK's own
client over stdio, next to a running bot that shares its store, with real Postgres targets and the local Slack
stand-in. The agent lists its tools, reads the backup, is refused production and a write with the guard's message,
plans the restore and proposes it; the proposal waits in Slack until two people approve it there, then runs once."""

import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import psycopg
import pytest
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.shared.exceptions import MCPError
from mcp.types import CallToolResult
from sqlalchemy import select

from bot.localslack.standin import LocalSlack
from bot.store import Store
from bot.store.models import AuditLog
from restore.guard import QueryRefused, require_read_only
from restore.meta import record_backup_time
from tests.bot.approvals.test_approvals import PASSWORD, fetch, url_with_password
from tests.bot.restore_work.conftest import BACKUP_TIME, DAMAGE, SHOP
from tests.pg import PgServer
from tests.rewind_app import BOT_TOKEN, Rewind, eventually, running_rewind
from tests.slack_driver import DEFAULT_CHANNEL, reaction_added

ROOT = Path(__file__).resolve().parents[2]
BOB, CAROL = "U0BOB", "U0CAROL"
WRITE = "DELETE FROM products WHERE kind = 'tea'"


@pytest.fixture
def shop(pg: PgServer) -> Iterator[dict[str, str]]:
    """prod, damaged after its nightly backup; the backup as its own database. DSNs carry a password."""
    names = {role: pg.create_database(role) for role in ("prod", "nightly")}
    dsns = {role: url_with_password(pg, name) for role, name in names.items()}
    with psycopg.connect(dsns["prod"], autocommit=True) as conn:
        conn.execute(SHOP + DAMAGE)
    with psycopg.connect(dsns["nightly"], autocommit=True) as conn:
        conn.execute(SHOP)
        record_backup_time(conn, BACKUP_TIME)
    try:
        yield dsns
    finally:
        for name in names.values():
            pg.drop_database(name)


def targets(shop: dict[str, str]) -> dict[str, Any]:
    return {"prod": {"dsn": shop["prod"], "role": "production"}, "nightly": {"dsn": shop["nightly"], "role": "backup"}}


def server_parameters(store: Store, slack: LocalSlack, shop: dict[str, str]) -> StdioServerParameters:
    """How an MCP client starts `rewind mcp`: the command and the environment its config snippet gives."""
    env = {
        "REWIND_DATABASE_URL": store.url,
        "REWIND_TARGETS": json.dumps(targets(shop)),
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "REWIND_SLACK_API_URL": slack.url,
    }
    return StdioServerParameters(command=sys.executable, args=["-m", "bot.cli", "mcp"], env=env, cwd=ROOT)


def answer(result: CallToolResult) -> dict[str, Any]:
    """The envelope, read from the structured content; the text content carries the same JSON."""
    assert result.structured_content == json.loads(result.content[0].text)  # type: ignore[union-attr]
    assert PASSWORD not in result.content[0].text  # type: ignore[union-attr]
    return result.structured_content  # type: ignore[no-any-return]


def proposal_status(rewind: Rewind, number: int) -> str:
    [view] = [p for p in rewind.services.approvals.in_incident(1) if p.number == number]
    return view.status


def test_an_agent_reads_plans_and_proposes_and_people_approve_in_slack(
    slack: LocalSlack, store: Store, shop: dict[str, str], tmp_path: Path
) -> None:
    with running_rewind(slack, store, targets=targets(shop)) as rewind:
        rewind.declare_here()
        proposed = anyio.run(agent_session, server_parameters(store, slack, shop), tmp_path / "mcp.log", shop)

        assert proposed["status"] == "proposed" and proposed["target"] == "prod"
        message = eventually(
            lambda: [m for m in slack.messages(DEFAULT_CHANNEL) if f"Proposal #{proposed['proposal']} on" in m["text"]]
        )[0]
        assert message["ts"] == proposed["message_ts"]
        assert "Proposed by the agent `agent:mcp`" in str(message["blocks"])
        # it waits: nothing ran, however long the agent waits, until people approve in Slack
        assert proposal_status(rewind, proposed["proposal"]) == "proposed"
        assert fetch(shop["prod"], "SELECT count(*) FROM products") == [(3,)]

        for user, event_id in ((BOB, "EvBOB"), (CAROL, "EvCAROL")):
            reaction = reaction_added("white_check_mark", DEFAULT_CHANNEL, message["ts"], user=user)
            assert rewind.driver.event(reaction, event_id=event_id).status == 200
        eventually(lambda: proposal_status(rewind, proposed["proposal"]) == "executed", timeout=30)
        assert fetch(shop["prod"], "SELECT count(*) FROM products") == [(6,)]
        assert fetch(shop["prod"], "SELECT count(*), sum(amount) FROM prices") == [(24, 30000)]
        rewind.services.jobs.shutdown()

    with store.transaction() as session:
        calls = list(session.scalars(select(AuditLog).where(AuditLog.tool.is_not(None)).order_by(AuditLog.id)))
        executions = list(session.scalars(select(AuditLog).where(AuditLog.tool.is_(None))))
    assert [(c.tool, c.outcome) for c in calls] == [
        ("rewind_targets", "ok"),
        ("rewind_query", "ok"),
        ("rewind_query", "refused"),
        ("rewind_query", "refused"),
        ("rewind_query", "refused"),
        ("rewind_approve", "refused"),
        ("rewind_plan", "ok"),
        ("rewind_propose", "ok"),
    ]
    assert {c.actor for c in calls} == {"agent:mcp"} and calls[3].arguments["sql"] == WRITE
    assert "sql" in (calls[4].detail or "") and calls[4].arguments == {"target": "nightly"}
    assert "rewind_approve" in (calls[5].detail or "")
    [execution] = executions
    # the two reactions are handled concurrently, so the approvers' order is either
    assert execution.proposer_id == "agent:mcp" and sorted(execution.approvers["users"]) == [BOB, CAROL]


async def agent_session(parameters: StdioServerParameters, log: Path, shop: dict[str, str]) -> dict[str, Any]:
    with anyio.fail_after(120), log.open("w") as errlog:
        async with stdio_client(parameters, errlog=errlog) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            listed = await session.list_tools()
            names = {t.name for t in listed.tools}
            tools = ("targets", "query", "diff", "deps", "gap", "plan", "propose", "journal_log", "undo_plan")
            assert names == {f"rewind_{n}" for n in tools}
            assert all(t.input_schema["type"] == "object" and t.description for t in listed.tools)

            found = answer(await session.call_tool("rewind_targets", {}))
            assert found["ok"] and (found["result"]["backup"], found["result"]["live"]) == ("nightly", "prod")
            assert found["result"]["incident"] == DEFAULT_CHANNEL
            [warning] = found["warnings"]  # the backup's login can write: said, and the guard still holds
            assert warning.startswith("backup target 'nightly' logs in as") and "can write" in warning

            rows = answer(await session.call_tool("rewind_query", {"target": "nightly", "sql": "TABLE products"}))
            assert rows["ok"] and len(rows["result"]["rows"]) == 6

            production = await session.call_tool("rewind_query", {"target": "prod", "sql": "SELECT 1"})
            assert production.is_error and "production target: a query never runs there" in answer(production)["error"]

            with pytest.raises(QueryRefused) as guard:
                require_read_only(WRITE)
            write = await session.call_tool("rewind_query", {"target": "nightly", "sql": WRITE})
            assert write.is_error and answer(write)["error"] == str(guard.value)

            for name, arguments in (("rewind_query", {"target": "nightly"}), ("rewind_approve", {"proposal": 1})):
                with contextlib.suppress(MCPError):  # refused by the SDK before any tool runs, as an error result
                    assert (await session.call_tool(name, arguments)).is_error  # or as a protocol error

            plan = answer(
                await session.call_tool("rewind_plan", {"table": "products", "deleted": True, "with_dependents": True})
            )
            assert plan["ok"] and plan["result"]["counts"]["public.products"]["insert"] == 3
            assert "INSERT INTO" in plan["result"]["sql"] and plan["result"]["roots"] == 3
            assert fetch(shop["prod"], "SELECT count(*) FROM products") == [(3,)]  # planned, not run

            proposal = await session.call_tool(
                "rewind_propose",
                {"target": "prod", "sql": plan["result"]["sql"], "reason": "restore the 3 deleted products"},
            )
            proposed = answer(proposal)
            assert not proposal.is_error and "never approve or execute" in proposed["warnings"][0]
            assert proposed["result"]["sql_sha256"] == plan["result"]["sql_sha256"]
            return proposed["result"]  # type: ignore[no-any-return]
