"""`rewind exec --request`: a script run asked for in the incident channel, approved with ✅ through the real bot
(signed requests through Bolt), and run once by the process that asked. The script records each run in a file."""

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.journal.service import journal_log, start_journal
from bot.localslack.standin import LocalSlack
from bot.store import Store
from bot.store.models import Entry, Proposal
from tests.bot.journal.helpers import SCHEMA, run, targets_for
from tests.rewind_app import BOT_TOKEN, Rewind, eventually, running_rewind
from tests.scenario.test_restore import CAROL, DAVE, proposal_message, react, targets
from tests.slack_driver import DEFAULT_CHANNEL, DEFAULT_USER

SCRIPT = 'import pathlib, sys\npathlib.Path("runs.txt").open("a").write("ran\\n")\nsys.exit(7)\n'


@pytest.fixture
def rewind(slack: LocalSlack, sqlite_store: Store, dbs: dict[str, str]) -> Iterator[Rewind]:
    with running_rewind(slack, sqlite_store, targets=targets(dbs)) as running:
        running.declare_here()
        yield running
        running.services.jobs.shutdown()


def ask(
    rewind: Rewind,
    dbs: dict[str, str],
    cwd: Path,
    wait_s: int = 60,
    *,
    targets_json: dict[str, Any] | None = None,
    script: str = SCRIPT,
) -> subprocess.Popen[str]:
    (cwd / "fix.py").write_text(script)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "REWIND_", "PG", "DATABASE"))}
    env.update(
        DATABASE_URL=dbs["prod"],
        REWIND_TARGETS=json.dumps(targets_json or targets(dbs)),
        REWIND_DATABASE_URL=rewind.services.store.url,
        REWIND_SLACK_API_URL=rewind.slack.url,
        REWIND_STATE_DIR=str(cwd / "state"),
        SLACK_BOT_TOKEN=BOT_TOKEN,
        REWIND_EXEC_CHANNEL=DEFAULT_CHANNEL,
        REWIND_EXEC_REQUESTER=DEFAULT_USER,
        REWIND_EXEC_WAIT_SECONDS=str(wait_s),
    )
    command = [sys.executable, "-m", "bot.cli", "exec", "--request", "--", sys.executable, "fix.py"]
    return subprocess.Popen(command, cwd=cwd, env=env, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def runs_of(cwd: Path) -> int:
    marker = cwd / "runs.txt"
    return marker.read_text().count("ran") if marker.exists() else 0


def stored(rewind: Rewind, number: int) -> Any:
    with rewind.services.store.transaction() as session:
        return session.query(Proposal).filter_by(number=number).one()


def thread_texts(slack: LocalSlack, ts: str) -> list[str]:
    return [m.get("text", "") for m in slack.messages(DEFAULT_CHANNEL) if m.get("thread_ts") == ts and m["ts"] != ts]


def test_two_eligible_approvals_run_the_command_once_and_the_requesters_own_does_not_count(
    rewind: Rewind, slack: LocalSlack, dbs: dict[str, str], tmp_path: Path
) -> None:
    process = ask(rewind, dbs, tmp_path)
    message = proposal_message(slack, timeout=30)
    assert "fix.py" in message["text"] or "run `" in message["text"]
    proposal = stored(rewind, 1)
    assert (
        proposal.kind == "command" and "DATABASE_URL" in proposal.sql_text and "reaches production" in proposal.sql_text
    )
    assert "sha256" in proposal.sql_text.split("\n")[1] and "fix.py" in proposal.sql_text.split("\n")[1]

    react(rewind, "white_check_mark", message["ts"], DEFAULT_USER)  # the requester: never counts
    react(rewind, "white_check_mark", message["ts"], CAROL)
    counted = eventually(lambda: rewind.services.approvals.get(proposal.id).approvers)
    assert counted == [CAROL] and stored(rewind, 1).status == "proposed"
    assert runs_of(tmp_path) == 0
    react(rewind, "white_check_mark", message["ts"], DAVE)
    react(rewind, "white_check_mark", message["ts"], DAVE, event_id="Ev-redelivered")

    _out, err = process.communicate(timeout=60)
    assert process.returncode == 7, err  # the command's own exit code, passed through
    assert runs_of(tmp_path) == 1
    done = stored(rewind, 1)
    assert done.status == "failed" and done.result["exit_code"] == 7  # a non-zero exit is a failed run
    said = eventually(lambda: [t for t in thread_texts(slack, message["ts"]) if "exited with code 7" in t])
    assert "the command ran once" in said[0]
    texts = [e.text for e in rewind.entries() if isinstance(e, Entry)]
    assert any("Proposal #1" in t and "approved by" in t for t in texts)
    assert any("exit code 7" in t or "exited with code 7" in t for t in texts)


def test_a_rejection_never_runs_it(rewind: Rewind, slack: LocalSlack, dbs: dict[str, str], tmp_path: Path) -> None:
    process = ask(rewind, dbs, tmp_path)
    message = proposal_message(slack, timeout=30)
    react(rewind, "x", message["ts"], CAROL)
    _out, err = process.communicate(timeout=60)
    assert process.returncode == 3 and "Not run: proposal #1 was rejected" in err
    assert runs_of(tmp_path) == 0


def test_no_decision_before_the_timeout_never_runs_it(
    rewind: Rewind, slack: LocalSlack, dbs: dict[str, str], tmp_path: Path
) -> None:
    process = ask(rewind, dbs, tmp_path, wait_s=2)
    message = proposal_message(slack, timeout=30)
    _out, err = process.communicate(timeout=60)
    assert process.returncode == 3 and "no decision before the timeout" in err
    assert runs_of(tmp_path) == 0 and stored(rewind, 1).status == "expired"
    eventually(lambda: any("Expired" in t for t in thread_texts(slack, message["ts"])))
    react(rewind, "white_check_mark", message["ts"], CAROL)
    react(rewind, "white_check_mark", message["ts"], DAVE)
    assert runs_of(tmp_path) == 0


def test_an_edited_script_is_refused(rewind: Rewind, slack: LocalSlack, dbs: dict[str, str], tmp_path: Path) -> None:
    process = ask(rewind, dbs, tmp_path)
    message = proposal_message(slack, timeout=30)
    (tmp_path / "fix.py").write_text(SCRIPT.replace("sys.exit(7)", "sys.exit(0)  # edited after it was proposed"))
    react(rewind, "white_check_mark", message["ts"], CAROL)
    react(rewind, "white_check_mark", message["ts"], DAVE)
    _out, err = process.communicate(timeout=60)
    assert process.returncode == 3 and "the script changed after it was proposed" in err
    assert runs_of(tmp_path) == 0 and stored(rewind, 1).status == "failed"


WRITER = """import os, psycopg, sys
with psycopg.connect(os.environ["DATABASE_URL"]) as conn:
    conn.execute("INSERT INTO customers VALUES (7, 'from the script', NULL)")
with psycopg.connect(os.environ["DATABASE_URL"]) as conn:
    conn.execute("UPDATE customers SET note = 'touched' WHERE id = 7")
"""


def test_a_journal_on_the_target_records_what_the_script_did(
    slack: LocalSlack, sqlite_store: Store, source_dsn: str, tmp_path: Path
) -> None:
    run(source_dsn, SCHEMA)
    targets = {"prod": {"dsn": source_dsn, "role": "production"}}
    start_journal(sqlite_store, targets_for(source_dsn), "prod")
    with running_rewind(slack, sqlite_store, targets=targets) as rewind:
        rewind.declare_here()
        dbs = {"prod": source_dsn}
        process = ask(rewind, dbs, tmp_path, targets_json=targets, script=WRITER)
        message = proposal_message(slack, timeout=30)
        react(rewind, "white_check_mark", message["ts"], CAROL)
        react(rewind, "white_check_mark", message["ts"], DAVE)
        _out, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
        journal = journal_log(sqlite_store, "prod").transactions
        assert [sorted(t.tables) for t in journal] == [["public.customers"], ["public.customers"]]
        said = eventually(lambda: [t for t in thread_texts(slack, message["ts"]) if "exited with code 0" in t])
        assert f"transactions {journal[0].xid}, {journal[1].xid}" in said[0]
        assert any(str(journal[1].xid) in e.text for e in rewind.entries())
        rewind.services.jobs.shutdown()
