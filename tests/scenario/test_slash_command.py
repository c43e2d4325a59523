"""A workspace that named the command `/incident`: every reply, error, example, help text, threaded message and
uploaded post-mortem says `/incident`, never `/inc`. Signed requests through Bolt, the local Slack stand-in."""

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from bot.localslack.standin import LocalSlack
from bot.store import Store
from tests.rewind_app import Rewind, eventually, running_rewind
from tests.slack_driver import DEFAULT_CHANNEL, DEFAULT_CHANNEL_NAME

SLASH = "/incident"
DEFAULT_NAME = re.compile(r"/inc(?![a-z])")
REPLIES = [
    "help",
    "bogus",
    "note at 25:99 the time is wrong",
    "flags",
    "actions",
    "status",
    "step 1 start",
    "flag resolve 9 fixed",
    "timeline",
    "targets",
    "query prod SELECT 1",
    "diff products",
    "plan products deleted",
    "propose prod UPDATE t SET x = 1",
    "undo",
    "journal tail",
    "replica up",
    "postmortem canvas update",
    "postmortem",
]


@pytest.fixture
def rewind(slack: LocalSlack, store: Store) -> Iterator[Rewind]:
    with running_rewind(slack, store, slash_command=SLASH) as running:
        yield running
        running.services.jobs.shutdown()


def everything_said(slack: LocalSlack, replies: list[dict[str, Any]]) -> list[str]:
    said = [json.dumps(reply) for reply in replies]
    said += [json.dumps(call.params) for call in slack.calls() if call.method.startswith(("chat.", "files.", "canvas"))]
    said += [u.data.decode() for u in slack.uploads() if u.data and not u.filename.endswith(".png")]
    return said


def test_every_text_names_the_configured_command(rewind: Rewind, slack: LocalSlack) -> None:
    elsewhere = rewind.driver.command("status", channel="C0GENERAL", channel_name="general", command=SLASH).json()
    assert f"{SLASH} declare" in elsewhere["text"]
    declared = rewind.driver.command("declare Prices vanished", channel_name=DEFAULT_CHANNEL_NAME, command=SLASH)
    assert declared.status == 200
    replies = [elsewhere]
    for text in REPLIES:
        response = rewind.driver.command(text, channel=DEFAULT_CHANNEL, command=SLASH)
        assert response.status == 200, text
        replies.append(response.json() if response.text else {})
    eventually(lambda: [u for u in slack.uploads() if u.filename.endswith("-postmortem.md")])

    said = everything_said(slack, replies)
    leaks = [text for text in said if DEFAULT_NAME.search(text)]
    assert leaks == []
    joined = "\n".join(said)
    for expected in (
        f"{SLASH} note",  # help
        f"I don't know `{SLASH} bogus`",
        f"Try: `{SLASH} help`",
        f"{SLASH} flag",  # no flags yet
        f"{SLASH} action",
        f"{SLASH} plan",  # no run of show
        f"{SLASH} flags",
        f"{SLASH} impact",  # the uploaded post-mortem's empty sections
    ):
        assert expected in joined, expected
