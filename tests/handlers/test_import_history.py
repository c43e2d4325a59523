"""`/inc import-history` end to end: a signed slash command through Bolt, the channel's history read from the local
stand-in in pages (with a 429 on the way), the entries in the store with their own times and authors."""

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from bot.localslack.standin import LocalSlack
from bot.localslack.workspace import BOT_USER_ID
from bot.store import Store
from bot.store.models import Flag, Incident
from handlers import history
from tests.rewind_app import Rewind, running_rewind
from tests.slack_driver import DEFAULT_CHANNEL, DEFAULT_CHANNEL_NAME, DEFAULT_USER

BOB = "U0BOB"
START = int(datetime(2026, 1, 22, 10, 0, tzinfo=UTC).timestamp())


@pytest.fixture
def rewind(slack: LocalSlack, store: Store, monkeypatch: pytest.MonkeyPatch) -> Iterator[Rewind]:
    monkeypatch.setattr(history, "PAGE_LIMIT", 4)  # several pages of history and of a thread
    with running_rewind(slack, store) as running:
        yield running


def ts(minute: int) -> str:
    return f"{START + minute * 60}.000100"


def post(slack: LocalSlack, minute: int, text: str, user: str = DEFAULT_USER, thread: int | None = None) -> str:
    return slack.post_as_user(DEFAULT_CHANNEL, user, text, ts=ts(minute), thread_ts=ts(thread) if thread else None)


def a_history(slack: LocalSlack) -> None:
    """An incident the bot did not follow: chatter, pins, a flag, a thread and commands typed as text."""
    for minute in range(0, 10):
        post(slack, minute, f"chatter {minute}", BOB if minute % 2 else DEFAULT_USER)
    post(slack, 12, "prices for customer 42 are gone")
    slack.react_as_user(DEFAULT_CHANNEL, ts(12), BOB, "pushpin")
    post(slack, 14, "/inc note at 10:05 consolidation script started", BOB)
    post(slack, 16, "the backup may lack late invoices", BOB)
    slack.react_as_user(DEFAULT_CHANNEL, ts(16), DEFAULT_USER, "large_yellow_circle")
    post(slack, 18, "restoring the 4am backup")
    for minute in range(19, 26):
        post(slack, minute, f"thread step {minute}", BOB, thread=18)
    slack.react_as_user(DEFAULT_CHANNEL, ts(24), DEFAULT_USER, "pushpin")
    post(slack, 30, "~10:28 reinsert finished", BOB)
    slack.react_as_user(DEFAULT_CHANNEL, ts(30), DEFAULT_USER, "pushpin")
    slack.react_as_user(DEFAULT_CHANNEL, ts(30), BOB, "pushpin")


def run_import(rewind: Rewind, slack: LocalSlack, results_before: int) -> str:
    response = rewind.driver.command("import-history")
    assert response.status == 200 and "Reading this channel's history" in response.json()["text"]
    posts = slack.wait_for("chat.postMessage", 2 * (results_before + 1), timeout=20)
    result = posts[-1].params["text"]
    assert result.startswith(":rewind: History imported:"), result
    return result


def timeline(rewind: Rewind) -> list[tuple[str, str, str | None, str, bool]]:
    return [
        (e.kind, e.text, e.author_name, f"{e.occurred_at:%H:%M}", e.approximate)
        for e in sorted(rewind.entries(), key=lambda e: (e.occurred_at, e.id))
    ]


def test_import_history_reads_every_page_and_a_second_run_adds_nothing(
    rewind: Rewind, slack: LocalSlack, store: Store
) -> None:
    a_history(slack)
    slack.rate_limit_next("conversations.history", retry_after=0)

    first = run_import(rewind, slack, 0)

    assert "Declared this channel an incident. 4 notes, 1 flags imported, 0 already present (23 messages read)" in first
    assert timeline(rewind) == [
        ("status", f"Incident declared: {DEFAULT_CHANNEL_NAME}", "Rewind", "10:00", False),
        ("note", "consolidation script started", "Bob Stone", "10:05", False),  # typed, dated by its `at`
        ("note", "prices for customer 42 are gone", "Alice Martin", "10:12", False),
        ("flag", "the backup may lack late invoices", "Bob Stone", "10:16", False),
        ("note", "thread step 24", "Bob Stone", "10:24", False),  # a reply on the thread's second page
        ("note", "reinsert finished", "Bob Stone", "10:28", True),
    ]
    with store.transaction() as session:
        incident = session.scalars(select(Incident)).one()
        assert (incident.channel_id, incident.declared_by) == (DEFAULT_CHANNEL, BOT_USER_ID)  # the channel's creator
        assert f"{incident.declared_at:%H:%M}" == "10:00"
        assert session.scalar(select(Flag.number)) == 1

    history_calls = slack.calls("conversations.history")
    assert history_calls[0].status == 429 and all(c.ok for c in history_calls[1:])
    assert len(history_calls) - 1 >= 4  # 15 top-level messages and the progress message, 4 per page
    thread_calls = [c for c in slack.calls("conversations.replies") if c.params.get("ts") == ts(18)]
    assert len(thread_calls) == 2  # the parent and 7 replies, 4 per page
    [progress, _result] = slack.calls("chat.postMessage")
    updates = [c.params["text"] for c in slack.calls("chat.update") if c.params["ts"] == progress.response["ts"]]
    assert any("messages read (2 pages)" in text for text in updates)
    assert updates[-1] == ":white_check_mark: History read: 23 messages."  # 22 people's and the progress message

    before = timeline(rewind)
    second = run_import(rewind, slack, 1)

    assert "0 notes, 0 flags imported, 5 already present" in second and "Declared" not in second
    assert timeline(rewind) == before


def test_a_slack_refusal_ends_in_the_progress_message_and_records_nothing(
    rewind: Rewind, slack: LocalSlack, store: Store
) -> None:
    a_history(slack)
    slack.fail_next("conversations.history", "missing_scope")

    assert rewind.driver.command("import-history").status == 200

    progress = slack.wait_for("chat.postMessage", 1)[0]
    update = slack.wait_for("chat.update", 1, timeout=10)[-1]
    assert update.params["ts"] == progress.response["ts"]
    assert update.params["text"].startswith(":warning: History import stopped: Slack answered `missing_scope`")
    assert rewind.entries() == [] and rewind.services.incidents.find(DEFAULT_CHANNEL) is None
