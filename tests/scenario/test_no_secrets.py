"""Invariant 5 from the outside: with targets whose DSNs carry a password, no message the stand-in recorded and no
log line (DEBUG and up) contains the password or a token, whatever succeeds or fails."""

import json
import logging

import pytest

from bot.localslack.standin import LocalSlack
from bot.store import Store
from tests.bot.approvals.test_approvals import FIX, PASSWORD, runs
from tests.rewind_app import BOT_TOKEN, SIGNING_SECRET, eventually, running_rewind
from tests.scenario.test_restore import CAROL, proposal_message, targets
from tests.slack_driver import DEFAULT_CHANNEL, reaction_added

SECRETS = (PASSWORD, BOT_TOKEN, SIGNING_SECRET)


def test_no_password_or_token_in_messages_or_logs(
    slack: LocalSlack,
    store: Store,
    dbs: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    broken = {"broken": {"dsn": dbs["replica"].replace("/rw_", "/nosuchdb_rw_"), "role": "backup"}}
    with running_rewind(slack, store, targets={**targets(dbs), **broken}) as rewind:
        rewind.declare_here()
        for command in (
            "targets",
            "query replica SELECT nosuch",
            "query broken SELECT 1",
            "query prod SELECT 1",
            "propose replica DELETE FROM accounts",
            "propose prod UPDATE nosuch SET x = 1",
            "diff accounts",
        ):
            rewind.driver.command(command)
        rewind.driver.command(f"propose prod {FIX}")
        ts = proposal_message(slack, 2)["ts"]
        for user in ("U0BOB", CAROL):
            rewind.driver.event(reaction_added("white_check_mark", DEFAULT_CHANNEL, ts, user=user))
        eventually(lambda: runs(dbs["prod"]) == 1)
        eventually(lambda: any("does not exist" in c.params.get("text", "") for c in slack.calls("chat.postEphemeral")))
        rewind.services.jobs.shutdown()

    recorded = json.dumps([c.params for c in slack.calls()], default=str)
    assert "does not exist" in recorded  # the failures were reported…
    for secret in SECRETS:
        assert secret not in recorded, secret  # …without a secret
        assert secret not in caplog.text, secret
