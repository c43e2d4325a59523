"""The import knows the bot's own messages without reading their wording: rewording every reply to a command changes
nothing about what an import of the channel records."""

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.importing.messages import ChannelInfo, SlackMessage
from bot.importing.rules import HistoryImporter, ImportResult
from bot.localslack.standin import LocalSlack
from bot.localslack.workspace import BOT_USER_ID
from bot.store import Store
from bot.store.models import Entry, Flag, Task
from handlers import blocks
from tests.rewind_app import Rewind, prepare_workspace, running_rewind
from tests.slack_driver import DEFAULT_CHANNEL, DEFAULT_CHANNEL_NAME, DEFAULT_USER

COMMANDS = (
    "note reinsert done",
    "flag backup may lack late invoices",
    "flag resolve 1 late invoices are in live",
    "impact 71 prices of one customer deleted",
    "assign <@U0BOB> check the 4am backup",
    "action <@U0BOB> add a guard against prod",
)
REPLIES = ("noted", "flag_raised", "flag_resolved", "recorded", "task_created", "plan_set", "step_updated")


@pytest.fixture
def slack() -> Iterator[LocalSlack]:
    with LocalSlack() as stand_in:
        prepare_workspace(stand_in)
        yield stand_in


@pytest.fixture
def rewind(slack: LocalSlack, store: Store) -> Iterator[Rewind]:
    with running_rewind(slack, store) as running:
        yield running


def reworded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every public reply to a command says something else than today, and the same for all of them."""
    for name in REPLIES:
        monkeypatch.setattr(blocks, name, lambda *_a, **_k: blocks.Reply(":ok_hand: Got it.", public=True))


def counts(store: Store) -> tuple[int | None, ...]:
    """Entries, flags, tasks."""
    with store.transaction() as session:
        return tuple(session.scalar(select(func.count()).select_from(t)) for t in (Entry, Flag, Task))


def export_of(slack: LocalSlack) -> list[SlackMessage]:
    """The channel as an export holds it; the import is told nothing about the bot's ids."""
    return [SlackMessage.model_validate(m) for m in slack.messages(DEFAULT_CHANNEL)]


def import_export(rewind: Rewind, store: Store, messages: list[SlackMessage]) -> ImportResult:
    channel = ChannelInfo(id=DEFAULT_CHANNEL, name=DEFAULT_CHANNEL_NAME)
    importer = HistoryImporter(store, rewind.services.settings)
    return importer.import_history(channel, messages, rewind.services.names.name)


def confirm_live(rewind: Rewind, slack: LocalSlack) -> list[dict[str, Any]]:
    """Each command typed as text (Slack did not deliver it) and then as the slash command the bot confirmed; every
    confirmation pinned by Bob. Returns the bot's confirmations."""
    rewind.declare_here()
    for text in COMMANDS:
        slack.post_as_user(DEFAULT_CHANNEL, DEFAULT_USER, f"/inc {text}")
        response = rewind.driver.command(text)
        assert response.status == 200 and ":warning:" not in response.text, response.text
    replies = slack.wait_for("chat.postMessage", len(COMMANDS) + 1)[1:]  # after the header
    for reply in replies:
        slack.react_as_user(DEFAULT_CHANNEL, reply.response["ts"], "U0BOB", "pushpin")
    return [slack.message(DEFAULT_CHANNEL, r.response["ts"]) for r in replies]


def test_reworded_replies_are_still_the_bots_and_nothing_is_counted_twice(
    rewind: Rewind, slack: LocalSlack, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    reworded(monkeypatch)
    replies = confirm_live(rewind, slack)
    assert {r["text"] for r in replies} == {":ok_hand: Got it."}
    live = counts(store)

    result = import_export(rewind, store, export_of(slack))

    assert (result.notes, result.flags, result.other, result.skipped) == (0, 0, 0, [])
    assert result.already_present == len(COMMANDS)  # each typed command: the bot confirmed it, the store has it
    assert result.bot_messages == len(COMMANDS) + 1  # the replies and the incident's header
    assert counts(store) == live


def test_the_replies_as_worded_today_are_recognised_the_same_way(
    rewind: Rewind, slack: LocalSlack, store: Store
) -> None:
    confirm_live(rewind, slack)
    live = counts(store)
    result = import_export(rewind, store, export_of(slack))
    assert (result.notes, result.flags, result.other, result.already_present) == (0, 0, 0, len(COMMANDS))
    assert counts(store) == live


def test_without_the_bots_confirmation_a_typed_command_is_applied(
    rewind: Rewind, slack: LocalSlack, store: Store
) -> None:
    """The same history with the bot's messages gone (it was not running): the typed commands are the record."""
    confirm_live(rewind, slack)
    people_only = [m for m in export_of(slack) if m.user != BOT_USER_ID]
    store_before = counts(store)

    result = import_export(rewind, store, people_only)

    assert (result.notes, result.flags, result.other, result.bot_messages) == (1, 1, 3, 0)
    # flag 1 was resolved live, so the typed `flag resolve 1` finds it resolved already
    assert result.skipped and "already resolved" in result.skipped[0]
    entries, flags, tasks = store_before
    assert counts(store) == ((entries or 0) + 5, (flags or 0) + 1, (tasks or 0) + 2)
