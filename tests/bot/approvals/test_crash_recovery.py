"""A bot process killed (SIGKILL) while a proposal is `executing`: the restart reconciles from pg_xact_status and never
runs the SQL a second time. The execution runs in a child process; a hook holds it in the window we want to kill."""

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.approvals.policy import Policy
from bot.approvals.service import ProposalService
from bot.approvals.views import Verdict
from bot.scribe.incidents import IncidentService
from bot.store import Store, upgrade
from tests.bot.approvals.test_approvals import (  # noqa: F401 - target_db is a fixture
    BOB,
    CAROL,
    CHANNEL,
    FIX,
    PROPOSER,
    fetch,
    runs,
    target_db,
    targets_for,
)
from tests.pg import PgServer

ROOT = Path(__file__).resolve().parents[3]
CHILD = """
import json, os, sys, time
from bot.approvals import execution
from bot.approvals.policy import Policy
from bot.approvals.service import ProposalService
from bot.store import Store
from restore.targets import Target

store = Store(os.environ["STORE_URL"])
targets = {name: Target.model_validate(spec) for name, spec in json.loads(os.environ["TARGETS"]).items()}
service = ProposalService(store, lambda: targets, Policy())
window = os.environ["WINDOW"]
if window == "before commit":  # the xid is in the store; COMMIT has not been sent
    record = execution.record_xid
    def hold_after_xid(store, proposal_id, xid):
        record(store, proposal_id, xid)
        print("in window", flush=True)
        time.sleep(60)
    execution.record_xid = hold_after_xid
else:  # COMMIT is done; the outcome is not recorded yet
    def hold_before_report(ctx, proposal_id, **kwargs):
        print("in window", flush=True)
        time.sleep(60)
    execution.finish = hold_before_report
service.execute(int(sys.argv[1]))
"""


@pytest.fixture
def pg_store(pg: PgServer) -> Iterator[Store]:
    name = pg.create_database("store")
    store = Store(pg.url_for(name))
    upgrade(store)
    try:
        yield store
    finally:
        store.dispose()
        pg.drop_database(name)


def approved(store: Store, service: ProposalService) -> int:
    IncidentService(store).declare(title="crash", user_id=PROPOSER, channel_id=CHANNEL, channel_name="inc-crash")
    proposal = service.propose(CHANNEL, "prod", FIX, PROPOSER).proposal
    service.approve(proposal.id, BOB)
    assert service.approve(proposal.id, CAROL).verdict is Verdict.EXECUTE
    return proposal.id


def kill_in_window(store: Store, target_dsn: str, proposal_id: int, window: str) -> None:
    env = {
        **os.environ,
        "STORE_URL": store.url,
        "TARGETS": json.dumps({n: t.model_dump(mode="json") for n, t in targets_for(target_dsn).items()}),
        "WINDOW": window,
    }
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(proposal_id)], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "in window"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)


def reconcile_until_resolved(service: ProposalService) -> list:
    for _ in range(100):  # the server notices the dead client's connection within moments
        resolved = service.reconcile()
        if resolved:
            return resolved
        time.sleep(0.05)
    raise AssertionError("reconcile() resolved nothing")


@pytest.mark.parametrize("window", ["before commit", "after commit"])
def test_a_killed_execution_is_reconciled_from_the_target(
    pg_store: Store,
    target_db: str,  # noqa: F811 - the fixture imported from test_approvals
    window: str,
) -> None:
    target_dsn = target_db
    service = ProposalService(pg_store, lambda: targets_for(target_dsn), Policy())
    proposal_id = approved(pg_store, service)
    kill_in_window(pg_store, target_dsn, proposal_id, window)

    stuck = service.get(proposal_id)
    assert stuck.status == "executing" and stuck.xid is not None  # recorded before COMMIT, in both windows
    [view] = reconcile_until_resolved(service)
    committed = window == "after commit"
    assert view.status == ("executed" if committed else "failed")
    assert f"pg_xact_status({stuck.xid}) = {'committed' if committed else 'aborted'}" in view.result["how"]
    assert runs(target_dsn) == (1 if committed else 0)
    assert fetch(target_dsn, "SELECT amount FROM prices WHERE id = 1") == [(11 if committed else 10,)]

    assert service.reconcile() == []  # resolved once; never re-executed
    assert not service.claim_execution(proposal_id)
    assert runs(target_dsn) == (1 if committed else 0)
    [audit] = service.audit(proposal_id)
    assert audit.outcome == view.status and "reconciled after a restart" in audit.detail
