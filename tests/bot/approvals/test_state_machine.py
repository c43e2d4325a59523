"""Random sequences of approve, revoke, reject, supersede, expire and redeliver, across two bot instances (two
Services on one Postgres store), with concurrent approvals racing. After every step, against the real target (every
proposal's SQL inserts its own tag into `executions`): nothing runs without enough distinct eligible approvals on its
hash, and nothing runs twice."""

import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta

import psycopg
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test
from sqlalchemy import select

from bot.approvals.views import Verdict
from bot.config import Settings
from bot.scribe.incidents import IncidentService
from bot.services import Services
from bot.store import Store, upgrade
from bot.store.models import AuditLog, Proposal, ProposalApproval
from tests.bot.approvals.test_approvals import url_with_password
from tests.pg import PgServer

PROPOSER, BOB, CAROL, EVE, MALLORY = "U0ALICE", "U0BOB", "U0CAROL", "U0EVE", "U0MALLORY"
ELIGIBLE = (BOB, CAROL, EVE)
USERS = st.sampled_from([PROPOSER, BOB, CAROL, EVE, MALLORY])
INSTANCES = st.integers(0, 1)


@pytest.fixture
def two_instances(pg: PgServer) -> Iterator[tuple[list[Services], str]]:
    names = [pg.create_database("store"), pg.create_database("prod")]
    target = url_with_password(pg, names[1])
    with psycopg.connect(target, autocommit=True) as conn:
        conn.execute("CREATE TABLE executions (tag text NOT NULL)")
    store_url = pg.url_for(names[0])
    upgrade(Store(store_url))
    config = Settings(
        database_url=store_url,
        targets={"prod": {"dsn": target, "role": "production"}},
        approvers=list(ELIGIBLE),
        approvals_required=2,
    )
    instances = [Services.create(config, Store(store_url)) for _ in range(2)]  # two processes' worth of engines
    try:
        yield instances, target
    finally:
        for services in instances:
            services.store.dispose()
        for name in names:
            pg.drop_database(name)


def test_approval_sequences_never_break_invariants_1_and_2(two_instances: tuple[list[Services], str]) -> None:
    instances, target = two_instances

    class Approvals(RuleBasedStateMachine):
        @initialize()
        def incident(self) -> None:
            self.channel = f"C{uuid.uuid4().hex[:10].upper()}"
            IncidentService(instances[0].store).declare(
                title="machine", user_id=PROPOSER, channel_id=self.channel, channel_name="inc-machine"
            )
            self.proposals: list[int] = []
            self.events: list[tuple[str, str]] = []  # (event id, action) already delivered once

        def current(self) -> int | None:
            return self.proposals[-1] if self.proposals else None

        def act(self, instance: int, action: str, user: str, event_id: str | None) -> None:
            proposal = self.current()
            if proposal is None:
                return
            approvals = instances[instance].approvals
            decision = getattr(approvals, action)(proposal, user, event_id=event_id)
            if decision.verdict is Verdict.EXECUTE:
                approvals.execute(proposal)

        @rule(instance=INSTANCES)
        def propose(self, instance: int) -> None:  # also supersedes the pending one
            tag = uuid.uuid4().hex
            sql = f"INSERT INTO executions VALUES ('{tag}')"
            proposed = instances[instance].approvals.propose(self.channel, "prod", sql, PROPOSER)
            self.proposals.append(proposed.proposal.id)

        @rule(instance=INSTANCES, user=USERS, action=st.sampled_from(["approve", "revoke", "reject"]))
        def react(self, instance: int, user: str, action: str) -> None:
            event_id = f"Ev{uuid.uuid4().hex[:12]}"
            self.events.append((event_id, action))
            self.act(instance, action, user, event_id)

        @rule(instance=INSTANCES, user=USERS, data=st.data())
        def redeliver(self, instance: int, user: str, data: st.DataObject) -> None:
            if not self.events:
                return
            event_id, action = data.draw(st.sampled_from(self.events))
            self.act(instance, action, user, event_id)

        @rule(first=USERS, second=USERS)
        def race(self, first: str, second: str) -> None:
            """Two approvals at once, one per instance, as two processes receiving two reactions."""
            threads = [
                threading.Thread(target=self.act, args=(i, "approve", user, f"Ev{uuid.uuid4().hex[:12]}"))
                for i, user in enumerate((first, second))
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()

        @rule(instance=INSTANCES, minutes=st.sampled_from([15, 29, 31]))
        def tick(self, instance: int, minutes: int) -> None:
            proposal = self.current()
            if proposal is None:
                return
            created = instances[instance].approvals.get(proposal).created_at
            approvals = instances[instance].approvals
            approvals.remind_due(created + timedelta(minutes=minutes))
            approvals.expire_due(created + timedelta(minutes=minutes))

        @invariant()
        def executed_at_most_once_and_only_when_approved(self) -> None:
            with psycopg.connect(target) as conn:
                ran = dict(conn.execute("SELECT tag, count(*) FROM executions GROUP BY tag").fetchall())
            assert all(count == 1 for count in ran.values()), ran  # nothing ran twice
            with instances[0].store.transaction() as session:
                proposals = {p.sql_text.split("'")[1]: p for p in session.scalars(select(Proposal))}
                for tag in ran:  # what ran was approved by enough eligible users, on its hash
                    proposal = proposals[tag]
                    assert proposal.status == "executed", (tag, proposal.status)
                    [audit] = session.scalars(select(AuditLog).where(AuditLog.proposal_id == proposal.id)).all()
                    approvers = audit.approvers["users"]
                    assert len(set(approvers)) >= 2 and PROPOSER not in approvers
                    assert set(approvers) <= set(ELIGIBLE)
                    hashes = session.scalars(
                        select(ProposalApproval.sql_sha256).where(ProposalApproval.proposal_id == proposal.id)
                    )
                    assert set(hashes) == {proposal.sql_sha256}
                for tag, proposal in proposals.items():
                    assert (proposal.status == "executed") == (tag in ran), (tag, proposal.status)

    run_state_machine_as_test(
        Approvals,
        settings=settings(
            max_examples=25,
            stateful_step_count=15,
            deadline=None,
            # A fixed seed: the same 25 sequences every run, so the closing check (some sequences do execute)
            # can't flake on an unlucky draw; new sequences come when the test changes, not between CI runs.
            derandomize=True,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )
    with psycopg.connect(target) as conn:  # the sequences did reach executions, not only refusals
        assert conn.execute("SELECT count(*) FROM executions").fetchone()[0] > 0
