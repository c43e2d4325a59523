"""Restore from the channel, end to end: signed requests through Bolt over HTTP, the local Slack stand-in, real Postgres
targets. Assertions are on what people see (messages, ephemerals, uploads) and on the rows of the target."""

import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from freezegun import freeze_time

from bot.localslack.standin import LocalSlack
from bot.store import Store
from restore.cluster import find_pg_bindir
from tests.bot.approvals.test_approvals import FIX, PASSWORD, fetch, runs, url_with_password
from tests.pg import PgServer
from tests.restore.guard_corpus import CORPUS
from tests.rewind_app import Rewind, eventually, running_rewind
from tests.slack_driver import DEFAULT_CHANNEL, DEFAULT_USER, reaction_added, reaction_removed

BOB, CAROL, DAVE = "U0BOB", "U0CAROL", "U0DAVE"


def targets(dsns: dict[str, str]) -> dict[str, Any]:
    return {
        "prod": {"dsn": dsns["prod"], "role": "production"},
        "replica": {"dsn": dsns["replica"], "role": "replica"},
    }


@pytest.fixture
def rewind(slack: LocalSlack, store: Store, dbs: dict[str, str]) -> Iterator[Rewind]:
    with running_rewind(slack, store, targets=targets(dbs)) as running:
        running.declare_here()
        yield running
        running.services.jobs.shutdown()


def proposal_message(slack: LocalSlack, number: int = 1, timeout: float = 10) -> dict[str, Any]:
    def find() -> dict[str, Any] | None:
        for message in slack.messages(DEFAULT_CHANNEL):
            if (
                f"Proposal #{number} on" in message.get("text", "")
                and message.get("thread_ts", message["ts"]) == message["ts"]
            ):
                return message
        return None

    return eventually(find, timeout=timeout)


def stored(rewind: Rewind, ts: str) -> Any:
    """The proposal once the store has its message's ts (saved right after the message is posted)."""
    return eventually(lambda: rewind.services.approvals.find_by_message(DEFAULT_CHANNEL, ts))


def thread_texts(slack: LocalSlack, ts: str) -> list[str]:
    return [m["text"] for m in slack.messages(DEFAULT_CHANNEL) if m.get("thread_ts") == ts and m["ts"] != ts]


def ephemerals_to(slack: LocalSlack, user: str) -> list[str]:
    return [c.params["text"] for c in slack.calls("chat.postEphemeral") if c.params.get("user") == user]


def react(rewind: Rewind, emoji: str, ts: str, user: str, event_id: str | None = None, **kw: Any) -> None:
    assert (
        rewind.driver.event(reaction_added(emoji, DEFAULT_CHANNEL, ts, user=user), event_id=event_id, **kw).status
        == 200
    )


def test_two_approvals_run_the_sql_once(rewind: Rewind, slack: LocalSlack, dbs: dict[str, str]) -> None:
    ack = rewind.driver.command(f"propose prod {FIX}").json()
    assert "Dry-running" in ack["text"] and ack.get("response_type", "ephemeral") == "ephemeral"
    message = proposal_message(slack)
    ts = message["ts"]
    shown = str(message["blocks"])
    assert "prod" in shown and "Dry run" in shown and "→ 3 rows" in shown and "lock_timeout 5s" in shown
    assert stored(rewind, ts).sql_sha256 in shown
    assert "UPDATE runs SET n = n + 1" in shown and "0/2" in shown and "anyone in the channel but" in shown

    react(rewind, "white_check_mark", ts, DEFAULT_USER)  # the proposer's own ✅
    eventually(lambda: any("is yours" in t for t in ephemerals_to(slack, DEFAULT_USER)))
    react(rewind, "white_check_mark", ts, BOB, event_id="EvBOB")
    eventually(lambda: "1/2" in slack.message(DEFAULT_CHANNEL, ts)["text"])
    assert runs(dbs["prod"]) == 0  # one approval: nothing runs

    react(rewind, "white_check_mark", ts, CAROL, event_id="EvCAROL")
    eventually(lambda: any("executed on prod" in t for t in thread_texts(slack, ts)))
    assert runs(dbs["prod"]) == 1
    assert fetch(dbs["prod"], "SELECT id, amount FROM prices ORDER BY id")[:4] == [(1, 11), (2, 21), (3, 31), (4, 40)]
    assert "executed" in slack.message(DEFAULT_CHANNEL, ts)["text"]

    react(rewind, "white_check_mark", ts, CAROL, event_id="EvCAROL", retry_num=1)  # Slack redelivers
    react(rewind, "white_check_mark", ts, DAVE, event_id="EvDAVE")
    eventually(lambda: any("is executed" in t for t in ephemerals_to(slack, DAVE)))
    assert runs(dbs["prod"]) == 1
    assert len([t for t in thread_texts(slack, ts) if "executed on prod" in t]) == 1
    [audit] = rewind.services.approvals.audit()
    assert audit.outcome == "executed" and audit.approvers == {"users": [BOB, CAROL]}
    kinds = [e.kind for e in rewind.entries()]
    assert kinds.count("approval") == 2 and kinds.count("execution") == 1


def test_reject_revoke_and_buttons(rewind: Rewind, slack: LocalSlack, dbs: dict[str, str]) -> None:
    rewind.driver.command(f"propose prod {FIX}")
    ts = proposal_message(slack)["ts"]
    react(rewind, "white_check_mark", ts, BOB)
    eventually(lambda: "1/2" in slack.message(DEFAULT_CHANNEL, ts)["text"])
    rewind.driver.event(reaction_removed("white_check_mark", DEFAULT_CHANNEL, ts, user=BOB))
    eventually(lambda: "0/2" in slack.message(DEFAULT_CHANNEL, ts)["text"])
    react(rewind, "x", ts, CAROL)
    eventually(lambda: "rejected" in slack.message(DEFAULT_CHANNEL, ts)["text"])
    react(rewind, "white_check_mark", ts, BOB)
    react(rewind, "white_check_mark", ts, DAVE)
    eventually(lambda: any("is rejected" in t for t in ephemerals_to(slack, DAVE)))
    assert runs(dbs["prod"]) == 0

    rewind.driver.command(f"propose prod {FIX}")
    second = proposal_message(slack, 2)
    proposal_id = stored(rewind, second["ts"]).id
    assert rewind.driver.action("proposal_approve", str(proposal_id), user=DEFAULT_USER).status == 200
    eventually(lambda: any("is yours" in t for t in ephemerals_to(slack, DEFAULT_USER)))
    rewind.driver.action("proposal_approve", str(proposal_id), user=BOB)
    rewind.driver.action("proposal_approve", str(proposal_id), user=DAVE)
    eventually(lambda: any("executed on prod" in t for t in thread_texts(slack, second["ts"])))
    assert runs(dbs["prod"]) == 1


def test_a_new_proposal_supersedes_and_a_failed_dry_run_cannot_be_approved(
    rewind: Rewind, slack: LocalSlack, dbs: dict[str, str]
) -> None:
    rewind.driver.command(f"propose prod {FIX}")
    first = proposal_message(slack)["ts"]
    react(rewind, "white_check_mark", first, BOB)
    rewind.driver.command("propose prod UPDATE runs SET n = n + 10")
    proposal_message(slack, 2)
    eventually(lambda: "superseded" in slack.message(DEFAULT_CHANNEL, first)["text"])
    rewind.driver.command("propose prod UPDATE nosuch SET x = 1")
    failed = proposal_message(slack, 3)
    assert "Dry run failed" in str(failed["blocks"]) and "proposal_approve" not in str(failed["blocks"])
    react(rewind, "white_check_mark", failed["ts"], BOB)
    eventually(lambda: any("is failed" in t for t in ephemerals_to(slack, BOB)))
    assert rewind.services.approvals.get(2).status == "proposed" and runs(dbs["prod"]) == 0


def test_expiry_and_reminder_with_frozen_time(rewind: Rewind, slack: LocalSlack) -> None:
    rewind.driver.command(f"propose prod {FIX}")
    ts = proposal_message(slack)["ts"]
    created = stored(rewind, ts).created_at
    with freeze_time(created + timedelta(minutes=16)):
        rewind.services.jobs.run_due()
    assert any("needs 2 more approval" in t for t in thread_texts(slack, ts))
    with freeze_time(created + timedelta(minutes=31)):
        rewind.services.jobs.run_due()
        rewind.services.jobs.run_due()  # a second tick (or another process) finds nothing more to do
    assert "expired" in slack.message(DEFAULT_CHANNEL, ts)["text"]
    assert [t for t in thread_texts(slack, ts) if t.startswith("Expired")] == ["Expired without enough approvals."]
    react(rewind, "white_check_mark", ts, BOB)
    eventually(lambda: any("is expired" in t for t in ephemerals_to(slack, BOB)))


def test_query_shows_a_table_attaches_csv_and_refuses_production(rewind: Rewind, slack: LocalSlack) -> None:
    reply = rewind.driver.command("query replica SELECT id, name FROM accounts WHERE id &lt;= 3 ORDER BY id").json()
    assert "read-only" in reply["text"]
    posted = eventually(
        lambda: [c.params["text"] for c in slack.calls("chat.postMessage") if "accounts" in c.params["text"]]
    )
    assert "id | name" in posted[0] and "3  | acct 3" in posted[0] and "3 row(s)" in posted[0]

    rewind.driver.command("query replica SELECT * FROM accounts ORDER BY id")
    [upload] = eventually(slack.uploads)
    assert upload.filename == "replica-query.csv" and upload.data.decode().count("\n") == 501
    big = [c.params["text"] for c in slack.calls("chat.postMessage") if "500 row(s)" in c.params["text"]]
    assert big and big[0].count("acct ") == 20

    refused = rewind.driver.command("query prod SELECT 1").json()["text"]
    assert "production target" in refused and "never runs there" in refused
    assert "Refused" in rewind.driver.command("query replica DELETE FROM accounts").json()["text"]
    rewind.driver.command("query replica SELECT nosuch FROM accounts")
    error = eventually(lambda: ephemerals_to(slack, DEFAULT_USER))
    assert 'column "nosuch" does not exist' in error[0] and PASSWORD not in error[0]

    listing = rewind.driver.command("targets").json()["text"]
    assert "`prod` — production" in listing and "`replica` — replica" in listing
    assert "postgresql://" not in listing and PASSWORD not in listing


def test_the_guard_corpus_through_slack_is_refused_or_harmless(
    rewind: Rewind, slack: LocalSlack, dbs: dict[str, str]
) -> None:
    for number, case in enumerate(CORPUS):
        slack.clear()
        text = case.sql.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")  # as Slack sends it
        ack = rewind.driver.command(f"query replica {text}").json()["text"]
        if "Refused" in ack or "Say which target" in ack:
            assert case.refused_by == "parser", (number, case.sql, ack)
            continue
        outcome = eventually(lambda: slack.calls("chat.postEphemeral") + slack.calls("chat.postMessage"))
        if outcome[0].method == "chat.postEphemeral":
            assert case.refused_by == "server" or "cancelled" in outcome[0].params["text"], (case.sql, outcome)
        else:
            assert case.refused_by == "allowed", (case.sql, outcome[0].params["text"])
    replica = dbs["replica"]
    assert fetch(replica, "SELECT count(*), sum(balance) FROM accounts") == [(500, 1252500)]
    assert fetch(replica, "SELECT count(*) FROM audit") == [(0,)]


# --- restore work: replica, diff, deps, gap, plan -> proposal -> execution -> verification ------------------------

SHOP = """
CREATE TABLE products (id text PRIMARY KEY, name text NOT NULL);
CREATE TABLE prices (id int PRIMARY KEY, product_id text NOT NULL REFERENCES products(id), amount int NOT NULL);
CREATE TABLE orders (id serial PRIMARY KEY, product_id text REFERENCES products(id), created_at timestamptz NOT NULL);
INSERT INTO products SELECT 'p' || g, 'product ' || g FROM generate_series(1, 6) g;
INSERT INTO prices SELECT g, 'p' || (1 + g % 6), g * 100 FROM generate_series(1, 24) g;
INSERT INTO orders (product_id, created_at) VALUES ('p1', now() - interval '2 days'), ('p2', now() - interval '2 days');
"""
DAMAGE = """
INSERT INTO orders (id, product_id, created_at) VALUES (100, 'p1', now() + interval '1 minute');
SET session_replication_role = replica;
DELETE FROM prices WHERE product_id IN ('p1', 'p2');
DELETE FROM products WHERE id IN ('p1', 'p2');
"""


@pytest.fixture
def shop(pg: PgServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Path]]:
    """A live shop database damaged after its nightly dump; yields (live DSN, dump path)."""
    monkeypatch.setenv("REWIND_STATE_DIR", str(tmp_path / "state"))
    name = pg.create_database("shop")
    live = url_with_password(pg, name)
    with psycopg.connect(live, autocommit=True) as conn:
        conn.execute(SHOP)
    dump = tmp_path / "nightly.dump"
    pg_dump = str(find_pg_bindir("pg_dump") / "pg_dump")
    subprocess.run([pg_dump, "-Fc", "-f", str(dump), "-d", pg.dsn_for(name)], check=True, capture_output=True)
    with psycopg.connect(live, autocommit=True) as conn:
        conn.execute(DAMAGE)
    try:
        yield live, dump
    finally:
        pg.drop_database(name)


def test_restore_work_from_the_channel(
    slack: LocalSlack, sqlite_store: Store, pg: PgServer, shop: tuple[str, Path]
) -> None:
    live, dump = shop
    settings = {
        "targets": {"prod": {"dsn": live, "role": "production"}},
        "backups": {"nightly": str(dump)},
        "replica_server_dsn": pg.admin_dsn,
    }
    with running_rewind(slack, sqlite_store, **settings) as rewind:
        rewind.declare_here()
        missing = rewind.driver.command("diff prices").json()["text"]
        assert "no backup to compare with" in missing and "/inc replica up nightly" in missing

        def finished(title: str) -> str:
            return eventually(
                lambda: next(
                    (
                        m["text"]
                        for m in slack.messages(DEFAULT_CHANNEL)
                        if m["text"].startswith(f":white_check_mark: {title}")
                    ),
                    None,
                ),
                timeout=60,
            )

        rewind.driver.command("replica up nightly")
        assert "ready: 3 tables" in finished("Provisioning a replica")
        parent = next(m for m in slack.messages(DEFAULT_CHANNEL) if "Provisioning" in m["text"])
        assert [c for c in slack.calls("chat.update") if c.params["ts"] != parent["ts"]]  # threaded progress updated
        assert thread_texts(slack, parent["ts"])

        rewind.driver.command("diff prices")
        assert "8 deleted" in finished("Diff of prices")
        rewind.driver.command("deps products deleted")
        assert "2 deleted rows, 10 rows missing" in finished("Rows that depend")
        rewind.driver.command("deps products deleted where id = 'p1'")
        eventually(
            lambda: (
                len(
                    [
                        m
                        for m in slack.messages(DEFAULT_CHANNEL)
                        if "Rows that depend" in m["text"] and "white_check" in m["text"]
                    ]
                )
                == 2
            ),
            timeout=30,
        )
        assert "where" in rewind.driver.command("diff prices where amount &gt; 0").json()["text"]

        rewind.driver.command("gap products deleted")
        assert "1 rows created after the backup" in finished("What the backup cannot")
        flags = rewind.services.timeline.flags(DEFAULT_CHANNEL)
        assert len(flags) == 1 and "orders row (100)" in flags[0][1].text

        rewind.driver.command("plan products deleted with dependents")
        proposal = proposal_message(slack, timeout=30)
        assert "restore 2 deleted rows of products with dependents" in proposal["text"]
        react(rewind, "white_check_mark", proposal["ts"], BOB)
        react(rewind, "white_check_mark", proposal["ts"], CAROL)
        eventually(
            lambda: any("0 deleted rows left to restore" in t for t in thread_texts(slack, proposal["ts"])), timeout=30
        )
        assert fetch(live, "SELECT count(*) FROM products") == [(6,)]
        assert fetch(live, "SELECT count(*), sum(amount) FROM prices") == [(24, 30000)]
        figures = [e.data for e in rewind.entries() if e.kind == "restore"]
        assert [f["operation"] for f in figures] == ["replica up", "diff", "deps", "deps", "gap", "plan", "verify"]
        rewind.services.jobs.shutdown()


def test_targets_warns_of_a_read_only_target_whose_login_can_write(rewind: Rewind, slack: LocalSlack) -> None:
    listing = rewind.driver.command("targets").json()["text"]
    assert "`replica` — replica" in listing
    warnings = eventually(lambda: [t for t in ephemerals_to(slack, DEFAULT_USER) if "can write" in t])
    assert len(warnings) == 1 and "replica target 'replica'" in warnings[0] and "rewind fence role" in warnings[0]
    assert PASSWORD not in warnings[0] and "prod" not in warnings[0].split("can write")[0]


def test_a_huge_value_is_cut_on_the_server_and_the_message_says_so(rewind: Rewind, slack: LocalSlack) -> None:
    rewind.driver.command("query replica SELECT 1 AS id, repeat('x', 50000000) AS wide")
    posted = eventually(
        lambda: [c.params["text"] for c in slack.calls("chat.postMessage") if "wide" in c.params["text"]]
    )
    assert "were cut to their first" in posted[0] and "47.7 MB" in posted[0]
    assert len(posted[0]) < 4000
