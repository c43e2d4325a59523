"""The proposal lifecycle as a service: dry run, approvals, supersession, execution once, audit, expiry, reconcile.

The targets are real Postgres databases; the store runs on SQLite and on Postgres."""

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict
from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError

from bot.approvals.context import timeline_entry
from bot.approvals.execution import record_xid
from bot.approvals.policy import Policy, sql_sha256
from bot.approvals.service import ProposalService
from bot.approvals.views import Verdict
from bot.errors import UsageError
from bot.localslack.standin import LocalSlack
from bot.scribe.incidents import IncidentService
from bot.store import Store, upgrade
from bot.store.models import AuditLog, Entry, EntryKind, Incident, Proposal
from restore.errors import TargetError
from restore.targets import Target, TargetRole
from tests.pg import PgServer
from tests.rewind_app import eventually, prepare_workspace, running_rewind
from tests.slack_driver import DEFAULT_CHANNEL

CHANNEL = "C0INC"
PROPOSER, BOB, CAROL, DAVE = "U0ALICE", "U0BOB", "U0CAROL", "U0DAVE"
PASSWORD = "s3cret-pw"
SETUP = """
CREATE TABLE prices (id int PRIMARY KEY, amount int NOT NULL);
INSERT INTO prices SELECT g, g * 10 FROM generate_series(1, 5) g;
CREATE TABLE runs (n int NOT NULL);
INSERT INTO runs VALUES (0);
"""
FIX = "UPDATE prices SET amount = amount + 1 WHERE id <= 3;\nUPDATE runs SET n = n + 1;"


def url_with_password(pg: PgServer, dbname: str) -> str:
    """A libpq URL carrying a password (the test server trusts every connection, so any password works)."""
    p = conninfo_to_dict(pg.dsn_for(dbname))
    return f"postgresql://{p.get('user', 'postgres')}:{PASSWORD}@{p.get('host', '127.0.0.1')}:{p.get('port')}/{dbname}"


@pytest.fixture
def target_db(pg: PgServer) -> Iterator[str]:
    """A production database with prices and a `runs` counter; yields its DSN (with a password in it)."""
    name = pg.create_database("prod")
    dsn = url_with_password(pg, name)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(SETUP)
    try:
        yield dsn
    finally:
        pg.drop_database(name)


def targets_for(dsn: str) -> dict[str, Target]:
    return {
        "prod": Target(name="prod", dsn=dsn, role=TargetRole.PRODUCTION),
        "replica": Target(name="replica", dsn=dsn, role=TargetRole.REPLICA),
    }


def fetch(dsn: str, query: str) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(query).fetchall()


def runs(dsn: str) -> int:
    return fetch(dsn, "SELECT n FROM runs")[0][0]


def make_service(store: Store, dsn: str, **policy: object) -> ProposalService:
    return ProposalService(store, lambda: targets_for(dsn), Policy(**policy))  # type: ignore[arg-type]


@pytest.fixture
def service(store: Store, target_db: str) -> ProposalService:
    IncidentService(store).declare(title="Prices vanished", user_id=PROPOSER, channel_id=CHANNEL, channel_name="inc-x")
    return make_service(store, target_db)


def test_a_proposal_is_dry_run_and_bound_to_its_hash(service: ProposalService, target_db: str) -> None:
    proposed = service.propose(CHANNEL, "prod", FIX, PROPOSER, proposer_name="Alice")
    p = proposed.proposal
    assert (p.number, p.status, p.target, p.sql_sha256) == (1, "proposed", "prod", sql_sha256(FIX))
    assert p.dry_run["ok"] and p.dry_run["counts"] == [3, 1] and p.dry_run["lock_timeout_s"] == 5
    assert runs(target_db) == 0 and fetch(target_db, "SELECT sum(amount) FROM prices")[0][0] == 150  # rolled back
    assert p.expires_at - p.created_at == timedelta(minutes=30)


def test_two_eligible_approvals_execute_once_and_are_audited(
    service: ProposalService, store: Store, target_db: str
) -> None:
    p = service.propose(CHANNEL, "prod", FIX, PROPOSER).proposal
    assert service.approve(p.id, PROPOSER).verdict is Verdict.PROPOSER
    first = service.approve(p.id, BOB, event_id="Ev1")
    assert first.verdict is Verdict.COUNTED and first.proposal.approvers == [BOB] and runs(target_db) == 0
    assert service.approve(p.id, BOB, event_id="Ev1").verdict is Verdict.DUPLICATE
    assert service.approve(p.id, BOB, event_id="Ev2").verdict is Verdict.ALREADY
    second = service.approve(p.id, CAROL, event_id="Ev3")
    assert second.verdict is Verdict.EXECUTE and second.proposal.status == "executing"
    done = service.execute(p.id)
    assert done.status == "executed" and done.result["counts"] == [3, 1] and done.xid
    assert runs(target_db) == 1 and fetch(target_db, "SELECT amount FROM prices WHERE id = 1") == [(11,)]

    assert service.approve(p.id, DAVE).verdict is Verdict.NOT_PENDING
    with pytest.raises(UsageError, match="runs only once"):
        service.execute(p.id)
    assert not service.claim_execution(p.id)
    assert runs(target_db) == 1

    [audit] = service.audit(p.id)
    assert (audit.sql_sha256, audit.target, audit.proposer_id, audit.outcome) == (
        p.sql_sha256,
        "prod",
        PROPOSER,
        "executed",
    )
    assert audit.approvers == {"users": [BOB, CAROL]} and audit.row_counts == {"counts": [3, 1], "rows_affected": 4}
    with pytest.raises(DBAPIError), store.transaction() as session:  # append-only, whoever connects
        session.execute(update(AuditLog).values(outcome="tampered"))
    kinds = [e.kind for e in _entries(store)]
    assert kinds.count("approval") == 2 and "execution" in kinds

    [summary] = service.summaries(p.incident_id)
    assert (summary.status, summary.approvers, summary.rows_affected) == ("executed", [BOB, CAROL], 4)


def test_only_configured_approvers_count(store: Store, target_db: str) -> None:
    IncidentService(store).declare(title="x", user_id=PROPOSER, channel_id=CHANNEL, channel_name="inc-x")
    service = make_service(store, target_db, approvers=(BOB, CAROL))
    p = service.propose(CHANNEL, "prod", FIX, PROPOSER).proposal
    refused = service.approve(p.id, DAVE)
    assert refused.verdict is Verdict.NOT_ELIGIBLE and "<@U0BOB>" in refused.explanation
    assert service.approve(p.id, BOB).verdict is Verdict.COUNTED
    assert service.approve(p.id, CAROL).verdict is Verdict.EXECUTE


def test_revoke_reject_and_supersede(service: ProposalService, target_db: str) -> None:
    p = service.propose(CHANNEL, "prod", FIX, PROPOSER).proposal
    service.approve(p.id, BOB)
    assert service.revoke(p.id, BOB).proposal.approvers == []
    service.approve(p.id, BOB)

    edited = FIX.replace("id <= 3", "id <= 2")
    newer = service.propose(CHANNEL, "prod", edited, PROPOSER)
    assert [s.number for s in newer.superseded] == [1] and service.get(p.id).status == "superseded"
    assert newer.proposal.approvers == []  # approvals never carry over to new SQL
    assert service.approve(p.id, CAROL).verdict is Verdict.NOT_PENDING

    assert service.reject(newer.proposal.id, PROPOSER).verdict is Verdict.PROPOSER
    assert service.reject(newer.proposal.id, CAROL).verdict is Verdict.REJECTED
    assert service.approve(newer.proposal.id, BOB).verdict is Verdict.NOT_PENDING
    assert runs(target_db) == 0


def test_a_failed_dry_run_is_posted_as_failed_and_cannot_be_approved(service: ProposalService, target_db: str) -> None:
    pending = service.propose(CHANNEL, "prod", FIX, PROPOSER).proposal
    bad = service.propose(CHANNEL, "prod", "UPDATE nosuch SET x = 1", PROPOSER)
    assert bad.proposal.status == "failed" and not bad.proposal.dry_run["ok"]
    assert 'relation "nosuch" does not exist' in bad.proposal.dry_run["error"]
    assert PASSWORD not in bad.proposal.dry_run["error"]
    assert bad.superseded == [] and service.get(pending.id).status == "proposed"
    assert service.approve(bad.proposal.id, BOB).verdict is Verdict.NOT_PENDING


def test_counts_that_differ_from_the_dry_run_roll_back(service: ProposalService, target_db: str) -> None:
    p = service.propose(CHANNEL, "prod", FIX, PROPOSER).proposal
    with psycopg.connect(target_db, autocommit=True) as conn:
        conn.execute("DELETE FROM prices WHERE id = 1")  # live changed since the dry run
    service.approve(p.id, BOB)
    assert service.approve(p.id, CAROL).verdict is Verdict.EXECUTE
    done = service.execute(p.id)
    assert done.status == "failed" and "Row counts differ" in done.result["error"]
    assert runs(target_db) == 0 and fetch(target_db, "SELECT amount FROM prices WHERE id = 2") == [(20,)]
    assert service.audit(p.id)[0].outcome == "failed"


def test_targets_are_checked_and_never_shown(service: ProposalService) -> None:
    with pytest.raises(TargetError, match="read-only") as read_only:
        service.propose(CHANNEL, "replica", FIX, PROPOSER)
    with pytest.raises(TargetError, match=r"Configured targets: prod \(production\), replica") as unknown:
        service.propose(CHANNEL, "staging", FIX, PROPOSER)
    assert PASSWORD not in str(read_only.value) + str(unknown.value)


def test_expiry_and_the_halfway_reminder(service: ProposalService) -> None:
    p = service.propose(CHANNEL, "prod", FIX, PROPOSER).proposal
    service.approve(p.id, BOB)
    assert service.remind_due(p.created_at + timedelta(minutes=14)) == []
    [reminded] = service.remind_due(p.created_at + timedelta(minutes=15))
    assert reminded.number == 1 and service.remind_due(p.created_at + timedelta(minutes=16)) == []
    assert service.expire_due(p.created_at + timedelta(minutes=29)) == []
    [expired] = service.expire_due(p.created_at + timedelta(minutes=30))
    assert expired.status == "expired" and service.expire_due(p.created_at + timedelta(minutes=31)) == []
    assert service.approve(p.id, CAROL).verdict is Verdict.NOT_PENDING


def test_reconcile_resolves_from_the_target_and_never_reruns(
    service: ProposalService, store: Store, target_db: str
) -> None:
    committed = service.propose(CHANNEL, "prod", FIX, PROPOSER).proposal
    service.approve(committed.id, BOB)
    service.approve(committed.id, CAROL)
    # The process ran the SQL and committed, then died before recording the outcome: simulate with the runner.
    from restore import apply

    apply.execute(service.target("prod"), FIX, on_xid=lambda xid: record_xid(store, committed.id, xid))
    assert runs(target_db) == 1

    lost = service.propose(CHANNEL, "prod", "UPDATE runs SET n = n + 100", PROPOSER).proposal
    service.approve(lost.id, BOB)
    service.approve(lost.id, CAROL)  # claimed, then the process died before reaching COMMIT (no xid)

    [first] = service.reconcile()  # the fresh `executing` without an xid may belong to a live process: left alone
    assert first.number == 1 and first.status == "executed" and "pg_xact_status" in first.result["how"]
    assert first.result["rows_affected"] == 4
    old = datetime.now(UTC) - timedelta(hours=1)
    with store.transaction() as session:
        session.execute(update(Proposal).where(Proposal.id == lost.id).values(executing_since=old))
    [second] = service.reconcile()
    assert second.number == 2 and second.status == "failed" and "before COMMIT" in second.result["how"]
    assert runs(target_db) == 1  # nothing ran again
    assert [a.outcome for a in service.audit()] == ["executed", "failed"]
    assert service.reconcile() == []


def _entries(store: Store) -> list[Entry]:
    with store.transaction() as session:
        return list(session.scalars(select(Entry).order_by(Entry.id)))


def test_sha256_is_of_the_exact_text() -> None:
    assert sql_sha256("SELECT 1") != sql_sha256("SELECT 1 ")
    assert len(sql_sha256("x")) == 64


def test_the_postmortem_lists_every_proposal(service: ProposalService, store: Store) -> None:
    from bot.postmortem.build import build_postmortem
    from bot.postmortem.render import render_markdown

    first = service.propose(CHANNEL, "prod", FIX, PROPOSER).proposal
    service.reject(first.id, BOB)
    second = service.propose(CHANNEL, "prod", FIX, PROPOSER).proposal
    service.approve(second.id, BOB)
    service.approve(second.id, CAROL)
    service.execute(second.id)
    pm = build_postmortem(store, first.incident_id, names={BOB: "Bob", CAROL: "Carol", PROPOSER: "Alice"})
    ops = [(o.number, o.status, o.proposer, o.approvers, o.rows_affected) for o in pm.restore_operations]
    assert ops == [(1, "rejected", "Alice", [], None), (2, "executed", "Alice", ["Bob", "Carol"], 4)]
    assert "| 2 | prod | UPDATE prices SET amount = amount + 1" in render_markdown(pm)


def test_the_scheduler_runs_the_proposal_job() -> None:
    import threading

    from apscheduler.schedulers.background import BackgroundScheduler

    from bot.scribe.reminders import add_proposal_job

    ran = threading.Event()
    scheduler = BackgroundScheduler(timezone=UTC)
    add_proposal_job(scheduler, ran.set, interval_s=60)
    scheduler.start()
    try:
        assert ran.wait(5) and scheduler.get_job("rewind-proposals") is not None
    finally:
        scheduler.shutdown(wait=False)


def test_members_of_the_approver_group_at_proposal_time_may_approve(store: Store, target_db: str) -> None:
    with LocalSlack() as slack:
        prepare_workspace(slack)
        slack.add_usergroup("S0ONCALL", [BOB, CAROL])
        slack.add_usergroup("S0EMPTY", [])
        targets = {"prod": {"dsn": target_db, "role": "production"}}
        with running_rewind(slack, store, approver_group="S0ONCALL", targets=targets) as rewind:
            rewind.declare_here()
            service = rewind.services.approvals
            proposal = service.propose(DEFAULT_CHANNEL, "prod", FIX, PROPOSER).proposal
            assert proposal.eligible == [BOB, CAROL]
            assert service.approve(proposal.id, DAVE).verdict is Verdict.NOT_ELIGIBLE
            assert service.approve(proposal.id, BOB).verdict is Verdict.COUNTED
            assert service.approve(proposal.id, CAROL).verdict is Verdict.EXECUTE
            assert slack.calls("usergroups.users.list")[0].params["usergroup"] == "S0ONCALL"

            service.policy = Policy(approver_group="S0EMPTY")
            with pytest.raises(UsageError, match="has no members"):
                service.propose(DEFAULT_CHANNEL, "prod", FIX, PROPOSER)


def test_an_approval_while_a_new_proposal_is_recorded_does_not_deadlock(pg: PgServer, target_db: str) -> None:
    """A decision locks its proposal, then writes a timeline entry (whose foreign key checks the incident's row); a
    new proposal locks the incident, then the pending proposals it supersedes. Both orders at once deadlocked when
    the incident was locked FOR UPDATE, which also blocks the foreign-key check."""
    name = pg.create_database("store")
    store = Store(pg.url_for(name))
    try:
        upgrade(store)
        IncidentService(store).declare(title="Prices", user_id=PROPOSER, channel_id=CHANNEL, channel_name="inc-x")
        service = make_service(store, target_db)
        first = service.propose(CHANNEL, "prod", FIX, PROPOSER).proposal
        outcome: list[object] = []
        second = threading.Thread(
            target=lambda: outcome.append(service.propose(CHANNEL, "prod", "UPDATE runs SET n = n + 10", PROPOSER))
        )
        with store.transaction() as session:  # the decision's transaction, step by step
            proposal = session.scalars(select(Proposal).where(Proposal.id == first.id).with_for_update()).one()
            second.start()
            eventually(lambda: waiting_on_a_lock(pg, name))  # the new proposal holds the incident, waits for ours
            incident = session.get_one(Incident, proposal.incident_id)
            session.add(timeline_entry(incident, EntryKind.APPROVAL, "approved", datetime.now(UTC), {}))
            session.flush()
        second.join(timeout=30)
        assert [p.proposal.number for p in outcome] == [2]  # type: ignore[attr-defined]
        assert service.get(first.id).status == "superseded"
    finally:
        store.dispose()
        pg.drop_database(name)


def waiting_on_a_lock(pg: PgServer, dbname: str) -> bool:
    with psycopg.connect(pg.admin_dsn) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock'", (dbname,)
        ).fetchone()
    assert row is not None and row[0] == 1
    return True
