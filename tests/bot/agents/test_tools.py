"""The agent's tools, called in-process as the MCP server calls them: each answer, each refusal in the words of the
service that refused, the size cap, and the audit log line every call leaves."""

import json

import anyio
import psycopg
import pytest
from sqlalchemy import select

from bot.agents.results import ToolResult
from bot.agents.server import build_server
from bot.agents.tools import AGENT_ID, TOOLS
from bot.approvals.views import Verdict
from bot.errors import UsageError
from bot.localslack.standin import LocalSlack
from bot.store.models import AuditLog, Proposal
from restore.guard import QueryRefused, require_read_only
from tests.bot.agents.conftest import MakeAgent
from tests.slack_driver import DEFAULT_CHANNEL

EXPECTED_TOOLS = {
    "rewind_targets",
    "rewind_query",
    "rewind_diff",
    "rewind_deps",
    "rewind_gap",
    "rewind_plan",
    "rewind_propose",
    "rewind_journal_log",
    "rewind_undo_plan",
}


def audit_lines(services) -> list[AuditLog]:  # type: ignore[no-untyped-def]
    with services.store.transaction() as session:
        return list(session.scalars(select(AuditLog).where(AuditLog.tool.is_not(None)).order_by(AuditLog.id)))


def count(dsn: str, table: str) -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # type: ignore[index]


def test_every_tool_has_a_schema_a_description_and_none_approves_or_executes() -> None:
    tools = anyio.run(build_server_tools)
    assert {t.name for t in tools} == EXPECTED_TOOLS == set(TOOLS)
    for listed in tools:
        assert len(listed.description or "") > 80, listed.name
        assert listed.input_schema["type"] == "object"
        assert listed.output_schema and "truncated" in listed.output_schema["properties"]
        assert listed.annotations and listed.annotations.destructive_hint is False
    query = next(t for t in tools if t.name == "rewind_query")
    assert query.input_schema["required"] == ["target", "sql"] and query.annotations.read_only_hint is True
    assert not [t for t in tools if "approve" in t.name or "exec" in t.name]


async def build_server_tools():  # type: ignore[no-untyped-def]
    return await build_server(None).list_tools()  # type: ignore[arg-type]


def test_a_query_on_the_backup_answers_in_the_cli_shape_and_is_audited(make_agent: MakeAgent) -> None:
    agent, services = make_agent()
    sql = "SELECT id, kind FROM products WHERE id IN ('p1', 'p2') ORDER BY id"
    answer = agent.call("rewind_query", target="nightly", sql=sql)
    assert answer.ok and answer.error is None and not answer.truncated
    assert answer.result["columns"] == ["id", "kind"] and answer.result["rows"] == [["p1", "tea"], ["p2", "tea"]]
    assert answer.result["notes"] == [] and answer.result["truncated"] is False
    assert "50,000 bytes of JSON" in answer.cap
    [line] = audit_lines(services)
    assert (line.actor, line.tool, line.outcome, line.target) == (AGENT_ID, "rewind_query", "ok", "nightly")
    assert line.arguments == {"target": "nightly", "sql": sql}
    assert line.sql_sha256 and len(line.sql_sha256) == 64 and line.proposal_id is None


def test_a_query_never_runs_on_production(make_agent: MakeAgent) -> None:
    agent, services = make_agent()
    refused = agent.call("rewind_query", target="prod", sql="SELECT 1")
    assert not refused.ok and refused.result is None
    with pytest.raises(UsageError) as service:
        services.jobs.targets.query_target("prod")
    assert refused.error == str(service.value) and "production target: a query never runs there" in refused.error
    [line] = audit_lines(services)
    assert line.outcome == "refused" and line.detail == refused.error


@pytest.mark.parametrize(
    "sql", ["DELETE FROM products", "SELECT 1; DROP TABLE products", "SELECT pg_terminate_backend(1)"]
)
def test_a_write_is_refused_with_the_guards_message(make_agent: MakeAgent, shop: dict[str, str], sql: str) -> None:
    agent, _ = make_agent()
    with pytest.raises(QueryRefused) as guard:
        require_read_only(sql)
    refused = agent.call("rewind_query", target="nightly", sql=sql)
    assert not refused.ok and refused.error == str(guard.value)
    assert count(shop["nightly"], "products") == 6


def test_a_typed_where_never_runs_on_production(make_agent: MakeAgent) -> None:
    """`picked()` exists on the backup and the replica only: evaluated on production, it would fail."""
    agent, _ = make_agent()
    refused = agent.call("rewind_diff", table="products", where="picked(kind)")
    assert not refused.ok and "REWIND_LIVE_REPLICA_TARGET" in refused.error
    deps = agent.call("rewind_deps", table="products", deleted=True, where="picked(kind)")
    assert deps.ok and deps.result["counts"]["public.products"]["missing"] == 2
    writing = agent.call("rewind_gap", table="products", deleted=True, where="true); DELETE FROM products WHERE (true")
    assert not writing.ok and "Refused" in writing.error

    agent, _ = make_agent(live_replica_target="copy")
    diff = agent.call("rewind_diff", table="products", where="picked(kind)")
    assert diff.ok and sorted(diff.result["deleted"]) == [["p1"], ["p2"]]


def test_diff_deps_and_gap_answer_in_the_cli_shapes(make_agent: MakeAgent) -> None:
    agent, _ = make_agent()
    diff = agent.call("rewind_diff", table="prices")
    assert diff.ok and diff.result["counts"]["deleted"] == 12 and diff.result["key"] == ["id"]
    deps = agent.call("rewind_deps", table="products", keys=[["p1"]])
    assert deps.ok and deps.result["root_table"] == "public.products"
    assert {row["table"] for row in deps.result["rows"]} >= {"public.products", "public.prices"}
    gap = agent.call("rewind_gap", table="products", deleted=True)
    assert gap.ok and [row["key"] for row in gap.result["created_after_backup"]] == [[100]]
    both = agent.call("rewind_deps", table="products", keys=[["p1"]], deleted=True)
    assert not both.ok and "either keys" in both.error


def test_results_are_capped_and_say_so(make_agent: MakeAgent) -> None:
    agent, services = make_agent(cap=20_000)
    sql = "SELECT g, repeat('x', 200) AS filler FROM generate_series(1, 1000) g"
    answer = agent.call("rewind_query", target="nightly", sql=sql, limit=1000)
    assert answer.ok and answer.truncated
    assert len(answer.model_dump_json()) <= 20_000 and "20,000 bytes of JSON" in answer.cap
    assert answer.result["truncated"] is True and answer.result["rows"][0][0] == 1
    # the query stopped at the byte cap on the server, then the envelope cut rows to fit its JSON under the cap
    assert answer.result["notes"][0].startswith(f"Stopped after {answer.result['row_count']} row(s)")
    [cut] = answer.cut
    assert cut == f"rows: kept the first {len(answer.result['rows'])} of {answer.result['row_count']} items"
    assert audit_lines(services)[-1].outcome == "ok"


def test_a_plan_too_big_for_the_cap_leaves_its_sql_out_whole(make_agent: MakeAgent) -> None:
    agent, _ = make_agent(cap=5_000)
    plan = agent.call("rewind_plan", table="products", deleted=True, with_dependents=True)
    assert plan.ok and plan.truncated and plan.result["sql"] is None
    assert plan.cut[0].startswith("sql: left out whole") and plan.result["sql_sha256"]


def test_plan_returns_the_sql_and_counts_and_writes_nothing(make_agent: MakeAgent, shop: dict[str, str]) -> None:
    agent, services = make_agent()
    plan = agent.call("rewind_plan", table="products", deleted=True, with_dependents=True)
    assert plan.ok and not plan.truncated
    assert plan.result["target"] == "prod" and plan.result["backup"] == "nightly" and plan.result["roots"] == 3
    assert plan.result["counts"]["public.products"]["insert"] == 3
    assert plan.result["counts"]["public.prices"]["insert"] == 12
    assert "INSERT INTO" in plan.result["sql"] and plan.result["steps"]
    assert count(shop["prod"], "products") == 3 and count(shop["prod"], "prices") == 12
    with services.store.transaction() as session:
        assert session.scalars(select(Proposal)).all() == []


def test_propose_posts_for_people_to_approve_and_an_agent_never_approves(
    make_agent: MakeAgent, slack: LocalSlack, shop: dict[str, str]
) -> None:
    agent, services = make_agent()
    sql = "UPDATE prices SET amount = amount + 1 WHERE id = 2"
    answer = agent.call("rewind_propose", target="prod", sql=sql, reason="bump one price to test the flow")
    assert answer.ok and answer.result["status"] == "proposed" and answer.result["proposal"] == 1
    assert answer.result["dry_run"]["ok"] and answer.result["dry_run"]["rows_affected"] == 1
    assert "never approve or execute" in answer.warnings[0]
    [message] = [m for m in slack.messages(DEFAULT_CHANNEL) if "Proposal #1 on" in m.get("text", "")]
    assert message["ts"] == answer.result["message_ts"] and "bump one price" in str(message["blocks"])

    view = services.approvals.find_by_message(DEFAULT_CHANNEL, message["ts"])
    assert view is not None and view.proposer_id == AGENT_ID
    for agent_id in (AGENT_ID, "agent:other"):
        decision = services.approvals.approve(view.id, agent_id)
        assert decision.verdict is Verdict.NOT_ELIGIBLE and "an agent can read and propose" in decision.explanation
    assert services.approvals.reject(view.id, "agent:other").verdict is Verdict.NOT_ELIGIBLE
    assert services.approvals.get(view.id).status == "proposed"
    with psycopg.connect(shop["prod"]) as conn:
        assert conn.execute("SELECT amount FROM prices WHERE id = 2").fetchone() == (200,)
    line = audit_lines(services)[-1]
    assert (line.tool, line.outcome, line.proposal_id, line.target) == ("rewind_propose", "ok", view.id, "prod")


def test_propose_aims_only_at_production(make_agent: MakeAgent) -> None:
    agent, services = make_agent()
    refused = agent.call("rewind_propose", target="nightly", sql="DELETE FROM prices", reason="no")
    assert not refused.ok and "nightly is a backup target: it is read-only" in refused.error
    assert audit_lines(services)[-1].outcome == "refused"


def test_without_slack_nothing_is_proposed_that_nobody_could_see(make_agent: MakeAgent) -> None:
    agent, services = make_agent(slack_side=False)
    refused = agent.call("rewind_propose", target="prod", sql="UPDATE prices SET amount = 1 WHERE id = 2", reason="x")
    assert not refused.ok and "set SLACK_BOT_TOKEN" in refused.error
    assert services.approvals.in_incident(1) == []
    assert agent.call("rewind_query", target="nightly", sql="SELECT 1").ok  # reading needs no Slack


def test_the_incident_is_the_configured_channel_or_the_only_open_one(make_agent: MakeAgent) -> None:
    agent, services = make_agent(declare=False)
    none = agent.call("rewind_diff", table="prices")
    assert not none.ok and "no open incident" in none.error
    services.incidents.declare(title="One", user_id="U1", channel_id="C1", channel_name="inc-one")
    assert agent.call("rewind_targets").result["incident"] == "C1"
    services.incidents.declare(title="Two", user_id="U1", channel_id="C2", channel_name="inc-two")
    several = agent.call("rewind_propose", target="prod", sql="SELECT 1", reason="x")
    assert not several.ok and "Several incidents are open (#inc-two (C2), #inc-one (C1))" in several.error

    agent, services = make_agent(declare=False, agent_channel="C9")
    services.incidents.declare(title="Nine", user_id="U1", channel_id="C9", channel_name="inc-nine")
    services.incidents.declare(title="Ten", user_id="U1", channel_id="C10", channel_name="inc-ten")
    assert agent.call("rewind_targets").result["incident"] == "C9"


def test_targets_lists_roles_sides_and_warns_of_logins_that_can_write(make_agent: MakeAgent) -> None:
    agent, _ = make_agent()
    answer = agent.call("rewind_targets")
    assert answer.ok
    roles = {t["name"]: t["role"] for t in answer.result["targets"]}
    assert roles == {"prod": "production", "nightly": "backup", "copy": "replica"}
    assert (answer.result["backup"], answer.result["live"]) == ("nightly", "prod")
    assert "postgresql://" not in json.dumps(answer.result)
    # the test server's login is a superuser: both read-only targets get a warning, production none
    assert len(answer.warnings) == 2 and all("can write" in w for w in answer.warnings)
    assert not [w for w in answer.warnings if "'prod'" in w]


def test_an_unknown_tool_and_a_failure_are_answers_too(make_agent: MakeAgent) -> None:
    agent, services = make_agent()
    unknown = agent.call("rewind_approve", proposal=1)
    assert isinstance(unknown, ToolResult) and not unknown.ok and "no tool 'rewind_approve'" in unknown.error
    [line] = audit_lines(services)
    assert (line.tool, line.outcome, line.arguments) == ("rewind_approve", "refused", {"proposal": 1})
    failed = agent.call("rewind_query", target="nightly", sql="SELECT nosuch FROM products")
    assert not failed.ok and 'column "nosuch" does not exist' in failed.error
