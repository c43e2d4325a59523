"""A command typed live and the same command read back from a channel's history make the same entries, the same flag
state and the same tasks: both go through the scribe's services. Only where it came from differs (source, message)."""

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from bot.importing.messages import ChannelInfo, SlackMessage
from bot.importing.rules import HistoryImporter
from bot.localslack.standin import LocalSlack
from bot.localslack.workspace import BOT_USER_ID
from bot.store import Store
from bot.store.models import Entry, EntryKind, Flag, Incident, Task
from tests.rewind_app import Rewind, prepare_workspace, running_rewind
from tests.slack_driver import DEFAULT_CHANNEL, DEFAULT_USER

REPLAY, REPLAY_NAME = "C0REPLAY", "inc-20260122-replay"
COMMANDS = (
    "flag backup may lack late invoices",
    "flag resolve 1 late invoices are in live",
    "assign <@U0BOB> check the 4am backup",
    "action <@U0BOB> add a guard against prod",
)


@pytest.fixture
def rewind(store: Store) -> Iterator[Rewind]:
    with LocalSlack() as slack:
        prepare_workspace(slack)
        slack.add_channel(REPLAY_NAME, channel_id=REPLAY, members=[DEFAULT_USER, "U0BOB", BOT_USER_ID])
        with running_rewind(slack, store) as running:
            yield running


def state(store: Store, channel_id: str) -> dict[str, Any]:
    """What a person sees of the commands: entries, flags and tasks, without when and from where they came."""
    with store.transaction() as session:
        incident = session.scalars(select(Incident).where(Incident.channel_id == channel_id)).one()
        entries = session.scalars(
            select(Entry).where(Entry.incident_id == incident.id, Entry.kind != EntryKind.STATUS).order_by(Entry.id)
        )
        flags = session.scalars(select(Flag).where(Flag.incident_id == incident.id).order_by(Flag.number))
        tasks = session.scalars(select(Task).where(Task.incident_id == incident.id).order_by(Task.kind, Task.number))
        return {
            "entries": [(e.kind, e.text, e.data, e.author_id, e.author_name, e.approximate) for e in entries],
            "flags": [(f.number, f.status, f.resolution, f.resolved_by) for f in flags],
            "tasks": [(t.kind, t.number, t.owner_id, t.text, t.status, t.created_by) for t in tasks],
        }


def test_a_flag_resolution_and_tasks_typed_live_or_imported_give_the_same_entries(rewind: Rewind, store: Store) -> None:
    rewind.services.names.name(DEFAULT_USER)  # the live command then carries the real name, as the import does
    rewind.declare_here()
    for text in COMMANDS:
        response = rewind.driver.command(text)
        assert response.status == 200 and ":warning:" not in response.text, response.text

    for text in COMMANDS:  # the same commands typed as messages in another channel the bot did not follow
        rewind.slack.post_as_user(REPLAY, DEFAULT_USER, f"/inc {text}")
    history = [SlackMessage.model_validate(m) for m in rewind.slack.messages(REPLAY)]
    result = HistoryImporter(store, rewind.services.settings).import_history(
        ChannelInfo(id=REPLAY, name=REPLAY_NAME), history, rewind.services.names.name
    )
    assert (result.flags, result.other, result.skipped) == (1, 3, [])

    live, imported = state(store, DEFAULT_CHANNEL), state(store, REPLAY)
    assert imported == live
    assert [kind for kind, *_ in live["entries"]] == ["flag", "note", "assignment", "action"]
    assert live["entries"][1][1:3] == ("Yellow flag 1 resolved: late invoices are in live", {"resolves_flag": 1})
    assert live["flags"] == [(1, "resolved", "late invoices are in live", DEFAULT_USER)]
    assert [t[:4] for t in live["tasks"]] == [
        ("action", 1, "U0BOB", "add a guard against prod"),
        ("assignment", 1, "U0BOB", "check the 4am backup"),
    ]
