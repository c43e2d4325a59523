"""The restore-jobs service hands its notifier plain values: no Slack markup (emoji, mentions, bold, code) in anything
it builds. The wording a person sees in Slack is handlers/restore_views.py's; this drives the service directly."""

import dataclasses
import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from freezegun import freeze_time
from pydantic import BaseModel

from bot.approvals.views import ProposalView, Verdict
from bot.restore_work.notifier import QueryAnswer, Verification
from tests.bot.restore_work.conftest import ALICE, BOB, CAROL, CHANNEL, Make, RecordingNotifier

MARKUP = re.compile(
    r"<[@#!]"  # mentions, channel links, @here
    r"|:[a-z][a-z0-9_+-]*:"  # emoji codes
    r"|\*[^*\s][^*\n]*\*"  # bold
    r"|`"  # inline code and code blocks
    r"|(?:^|\s)_[^_\s][^_\n]*_(?:\s|$)"  # italics
)


def strings(value: Any) -> Iterator[str]:
    """Every string a notification carries. Of a proposal view (the approvals service's value, whose SQL may hold
    `::casts`), the summary this service wrote."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, ProposalView):
        yield value.summary
    elif isinstance(value, BaseModel):
        yield from strings(value.model_dump())
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for field in dataclasses.fields(value):
            yield from strings(getattr(value, field.name))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from strings(key)
            yield from strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from strings(item)


def marked_up(notifier: RecordingNotifier) -> list[tuple[str, str]]:
    return [(name, text) for name, args in notifier.calls for text in strings(args) if MARKUP.search(text)]


def test_the_markup_check_catches_slack_wording() -> None:
    for text in (":white_check_mark: done", "<@U0ALICE> asked", "*Dry run*", "```SELECT 1```", "_no rows_"):
        assert MARKUP.search(text), text
    for text in ("Diff of products: 2 deleted, 0 added, 0 changed", "created at 2026-01-11 00:00:00+00:00"):
        assert not MARKUP.search(text), text


def test_every_notification_is_plain(make_services: Make) -> None:
    services, notifier = make_services()
    jobs, approvals = services.jobs, services.approvals
    nightly = jobs.targets.query_target("nightly")

    jobs.query(CHANNEL, ALICE, nightly, "SELECT id, name FROM products ORDER BY id").result(timeout=60)
    jobs.query(CHANNEL, ALICE, nightly, "SELECT nosuch FROM products").result(timeout=60)
    jobs.diff(CHANNEL, ALICE, "products", None).result(timeout=60)
    jobs.diff(CHANNEL, ALICE, "nosuch", None).result(timeout=60)
    jobs.deps(CHANNEL, ALICE, "products", "kind = 'tea'").result(timeout=60)
    jobs.gap(CHANNEL, ALICE, "products", None).result(timeout=60)
    jobs.proposals.propose(CHANNEL, ALICE, "alice", "prod", "UPDATE prices SET amount = amount + 1").result(60)
    jobs.plan(CHANNEL, ALICE, "alice", "products", None, True, [], "/inc plan products deleted").result(timeout=60)

    [answer] = [args[2] for args in notifier.named("query_answered")]
    assert isinstance(answer, QueryAnswer) and answer.target == "nightly" and answer.result.row_count == 6
    [(_, _, error, target)] = notifier.named("refused")
    assert target == "nightly" and 'column "nosuch" does not exist' in error
    [(_, title, failure)] = notifier.named("job_failed")
    assert title == "Diff of nosuch (nightly vs prod)" and "nosuch" in failure
    [(old, by)] = notifier.named("superseded")
    assert (old.number, by.number) == (1, 2)

    plan = approvals.get(by.id)
    approvals.approve(plan.id, BOB)
    decision = approvals.approve(plan.id, CAROL)
    assert decision.verdict is Verdict.EXECUTE
    assert jobs.proposals.execute(plan.id).status == "executed"
    [(_, verification)] = notifier.named("verified")
    assert verification == Verification("products", left_to_restore=0)

    pending = approvals.propose(CHANNEL, "prod", "UPDATE prices SET amount = 1", ALICE).proposal
    with freeze_time(pending.created_at + timedelta(minutes=16)):
        jobs.run_due()
    with freeze_time(pending.created_at + timedelta(minutes=31)):
        jobs.run_due()
    assert [args[0].number for args in notifier.named("remind")] == [3]
    assert [args[0].number for args in notifier.named("expired")] == [3]

    called = {name for name, _ in notifier.calls}
    assert called >= {"job_started", "job_progress", "job_done", "show_proposal", "executing", "executed"}
    assert marked_up(notifier) == []
    flags = services.timeline.flags(CHANNEL)
    assert flags and not [entry.text for _, entry in flags if MARKUP.search(entry.text)]
