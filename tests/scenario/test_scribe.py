"""The scribe end to end: requests signed as Slack signs them, through Bolt over HTTP (and Socket Mode), with the
app's WebClient on the local Slack stand-in. Assertions are on what the stand-in recorded and what the store holds."""

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from bot.localslack.standin import LocalSlack
from bot.localslack.workspace import BOT_USER_ID
from bot.store import Store, upgrade
from tests.pg import PgServer
from tests.rewind_app import SIGNING_SECRET, Rewind, eventually, running_rewind
from tests.slack_driver import (
    DEFAULT_CHANNEL,
    DEFAULT_USER,
    SocketModeDriver,
    message_changed,
    reaction_added,
    reaction_removed,
    sign,
    slash_command,
)


@pytest.fixture
def rewind(slack: LocalSlack, store: Store) -> Iterator[Rewind]:
    with running_rewind(slack, store) as running:
        yield running


def test_declare_creates_the_channel_invites_and_posts_a_header(rewind: Rewind, slack: LocalSlack) -> None:
    today = datetime.now(UTC).strftime("%Y%m%d")
    response = rewind.driver.command("declare Prices vanished from prod!", channel="C0GENERAL", channel_name="general")
    assert response.status == 200 and "Incident declared in <#" in response.json()["text"]

    [create] = slack.calls("conversations.create")
    assert create.params["name"] == f"inc-{today}-prices-vanished-from-prod"
    channel_id = create.response["channel"]["id"]
    [invite] = slack.calls("conversations.invite")
    assert (invite.params["channel"], invite.params["users"]) == (channel_id, DEFAULT_USER)
    [header] = slack.calls("chat.postMessage")
    assert header.params["channel"] == channel_id and "Prices vanished from prod!" in header.params["text"]
    assert create.token == "xoxb-test-token-0000"

    incident = rewind.services.incidents.get(channel_id)
    assert incident.header_ts == header.response["ts"] and incident.declared_by == DEFAULT_USER
    [declared] = rewind.entries()
    assert declared.text == "Incident declared: Prices vanished from prod!" and declared.author_id == DEFAULT_USER


def test_a_taken_channel_name_gets_a_suffix(rewind: Rewind, slack: LocalSlack) -> None:
    rewind.driver.command("declare Same title", channel="C0GENERAL", channel_name="general")
    rewind.driver.command("declare Same title", channel="C0GENERAL", channel_name="general")
    names = [c.response["channel"]["name"] for c in slack.calls("conversations.create") if c.ok]
    assert names[1] == names[0] + "-2"


def test_declare_in_an_inc_channel_adopts_it(rewind: Rewind, slack: LocalSlack) -> None:
    rewind.declare_here()
    assert slack.calls("conversations.create") == []
    assert rewind.services.incidents.get(DEFAULT_CHANNEL).title == "Prices vanished"
    again = rewind.driver.command("declare Another")
    assert "already the incident" in again.json()["text"] and len(rewind.entries()) == 1


def test_notes_flags_plan_and_tasks_are_recorded_then_confirmed(rewind: Rewind, slack: LocalSlack) -> None:
    rewind.declare_here()
    slack.clear()
    for text in (
        "note ~04:10 consolidation script started",
        "flag backup may lack late invoices",
        "plan restore backup; diff prices; reinsert",
        "step 1 start",
        "step 2 owner <@U0BOB|bob>",
        "assign <@U0BOB> check the 4am backup",
        "action <@U0BOB> add a guard against prod",
        "flag resolve 1 late invoices are in live",
    ):
        assert rewind.driver.command(text).status == 200
    posted = [c.params["text"] for c in slack.wait_for("chat.postMessage", 8)]
    assert (
        posted[0].startswith(":pushpin: Noted: `~") and f"consolidation script started — <@{DEFAULT_USER}>" in posted[0]
    )
    assert posted[1] == ":large_yellow_circle: Yellow flag 1 raised: backup may lack late invoices"
    assert "*2.* diff prices — pending, <@U0BOB>" in posted[4]
    assert posted[6] == ":bust_in_silhouette: Action item 1 to <@U0BOB>: add a guard against prod"
    assert posted[7] == ":white_circle: Yellow flag 1 resolved: late invoices are in live"

    kinds = [(e.kind, e.text) for e in rewind.entries()]
    assert kinds[1] == ("note", "consolidation script started")
    assert ("step", "Step 1 started: restore backup") in kinds
    assert ("assignment", "Assigned to <@U0BOB>: check the 4am backup") in kinds
    note = rewind.entries()[1]
    assert note.approximate and note.occurred_at.strftime("%H:%M") == "04:10"

    listing = rewind.driver.command("actions").json()
    assert "add a guard against prod" in listing["text"] and "response_type" not in listing


def test_status_timeline_and_help_answer_only_the_asker(rewind: Rewind, slack: LocalSlack) -> None:
    rewind.declare_here()
    rewind.driver.command("note backup located")
    slack.wait_for("chat.postMessage", 2)  # the header and the note's confirmation, posted after the ack
    slack.clear()
    status = rewind.driver.command("status").json()["text"]
    assert "*Open yellow flags*\nnone" in status and "backup located" in status
    assert "backup located" in rewind.driver.command("timeline 1").json()["text"]
    assert "/inc declare <title>" in rewind.driver.command("help").json()["text"]
    assert slack.calls("chat.postMessage") == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("frobnicate", "Try: `/inc help`"),
        ("note at 25:61 something", "Try: `/inc note"),
        ("step 9 start", "There is no step 9"),
        ("flag resolve 4 fixed", "no yellow flag 4"),
        ("assign bob do it", "not a user mention"),
    ],
)
def test_bad_input_is_explained_privately_and_records_nothing(
    rewind: Rewind, slack: LocalSlack, text: str, expected: str
) -> None:
    rewind.declare_here()
    before = len(rewind.entries(include_deleted=True))
    slack.clear()
    reply = rewind.driver.command(text).json()
    assert expected in reply["text"] and reply.get("response_type", "ephemeral") == "ephemeral"
    assert len(rewind.entries(include_deleted=True)) == before
    assert slack.calls("chat.postMessage") == []


def test_commands_outside_an_incident_channel_say_how_to_start_one(rewind: Rewind) -> None:
    reply = rewind.driver.command("note hello", channel="C0RANDOM", channel_name="random").json()
    assert "isn't an incident channel" in reply["text"] and "/inc declare" in reply["text"]
    assert rewind.entries() == []


def test_pushpin_records_the_message_with_author_permalink_and_its_own_time(rewind: Rewind, slack: LocalSlack) -> None:
    rewind.declare_here()
    ts = rewind.post("~04:10 prices for acme are gone", user="U0BOB")
    assert rewind.driver.event(reaction_added("pushpin", DEFAULT_CHANNEL, ts, item_user="U0BOB")).status == 200
    [confirm] = slack.wait_for("reactions.add")
    assert (confirm.params["timestamp"], confirm.params["name"]) == (ts, "memo")
    note = eventually(lambda: [e for e in rewind.entries() if e.kind == "note"])[0]
    posted = datetime.fromtimestamp(float(ts), tz=UTC)
    assert note.text == "prices for acme are gone" and note.author_id == "U0BOB" and note.author_name == "Bob Stone"
    assert note.occurred_at == posted.replace(hour=4, minute=10, second=0, microsecond=0) and note.approximate
    assert note.permalink and ts.replace(".", "") in note.permalink
    assert (note.source, note.source_channel, note.source_ts) == ("reaction", DEFAULT_CHANNEL, ts)


def test_redelivery_and_a_second_pushpin_record_once(rewind: Rewind, slack: LocalSlack) -> None:
    rewind.declare_here()
    ts = rewind.post("prices are gone")
    event = reaction_added("pushpin", DEFAULT_CHANNEL, ts)
    rewind.driver.event(event, event_id="EvSAME")
    slack.wait_for("reactions.add")
    assert rewind.driver.event(event, event_id="EvSAME", retry_num=1, retry_reason="http_timeout").status == 200
    rewind.driver.event(reaction_added("pushpin", DEFAULT_CHANNEL, ts, user="U0BOB"))
    time.sleep(0.3)
    assert len([e for e in rewind.entries() if e.kind == "note"]) == 1
    assert len(slack.calls("reactions.add")) == 1


def test_removing_the_reaction_withdraws_the_entry(rewind: Rewind, slack: LocalSlack) -> None:
    rewind.declare_here()
    ts = rewind.post("prices are gone")
    rewind.driver.event(reaction_added("pushpin", DEFAULT_CHANNEL, ts))
    slack.wait_for("reactions.add")
    rewind.driver.event(reaction_removed("pushpin", DEFAULT_CHANNEL, ts))
    slack.wait_for("reactions.remove")
    [withdrawn] = eventually(lambda: [e for e in rewind.entries(include_deleted=True) if e.deleted_at])
    assert withdrawn.text == "prices are gone" and [e.kind for e in rewind.entries()] == ["status"]


def test_yellow_circle_raises_a_flag_confirmed_in_thread(rewind: Rewind, slack: LocalSlack) -> None:
    rewind.declare_here()
    ts = rewind.post("payments after 4am are not in the backup")
    slack.clear()
    rewind.driver.event(reaction_added("large_yellow_circle", DEFAULT_CHANNEL, ts))
    [reply] = slack.wait_for("chat.postMessage")
    assert reply.params["thread_ts"] == ts and "Yellow flag 1 raised" in reply.params["text"]
    assert "*1.* payments after 4am are not in the backup — open" in rewind.driver.command("flags").json()["text"]


def test_an_edited_message_updates_its_entry(rewind: Rewind, slack: LocalSlack) -> None:
    rewind.declare_here()
    ts = rewind.post("prices are gone")
    rewind.driver.event(reaction_added("pushpin", DEFAULT_CHANNEL, ts))
    slack.wait_for("reactions.add")
    rewind.driver.event(message_changed(DEFAULT_CHANNEL, ts, "prices AND products are gone", "prices are gone"))
    eventually(lambda: any(e.text == "prices AND products are gone" for e in rewind.entries()))


def test_add_to_timeline_shortcut_does_what_the_pushpin_does(rewind: Rewind, slack: LocalSlack) -> None:
    rewind.declare_here()
    ts = rewind.post("restore finished", user="U0BOB")
    message = slack.message(DEFAULT_CHANNEL, ts)
    assert rewind.driver.shortcut("add_to_timeline", message).status == 200
    [confirm] = slack.wait_for("reactions.add")
    assert confirm.params["timestamp"] == ts
    [note] = [e for e in rewind.entries() if e.kind == "note"]
    assert (note.text, note.source, note.author_id) == ("restore finished", "shortcut", "U0BOB")


def test_the_bot_ignores_its_own_reactions(rewind: Rewind, slack: LocalSlack) -> None:
    rewind.declare_here()
    ts = rewind.post("anything")
    rewind.driver.event(reaction_added("pushpin", DEFAULT_CHANNEL, ts, user=BOT_USER_ID))
    time.sleep(0.3)
    assert [e.kind for e in rewind.entries()] == ["status"] and slack.calls("reactions.add") == []


def test_reactions_outside_incident_channels_are_ignored(rewind: Rewind, slack: LocalSlack) -> None:
    slack.add_channel("random", channel_id="C0RANDOM", members=[DEFAULT_USER])
    ts = rewind.post("hello", channel="C0RANDOM")
    rewind.driver.event(reaction_added("pushpin", "C0RANDOM", ts))
    time.sleep(0.3)
    assert rewind.entries() == [] and slack.calls("reactions.add") == []


def _signed_note(text: str = "note forged?") -> str:
    body = "&".join(f"{k}={v}" for k, v in slash_command(text).items())
    return body.replace(" ", "+")


@pytest.mark.parametrize("case", ["forged", "stale", "missing"])
def test_unsigned_forged_or_stale_requests_get_401_and_record_nothing(rewind: Rewind, case: str) -> None:
    rewind.declare_here()
    before = len(rewind.entries())
    body = _signed_note()
    if case == "forged":
        headers = sign("not-the-secret", body)
    elif case == "stale":
        headers = sign(SIGNING_SECRET, body, timestamp=int(time.time()) - 6 * 60)
    else:
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
    assert rewind.driver.post(body, headers).status == 401
    assert len(rewind.entries()) == before


def test_healthz(rewind: Rewind) -> None:
    assert rewind.driver.get("/healthz").status == 200


def test_two_instances_on_one_postgres_store_record_an_event_once(pg: PgServer, slack: LocalSlack) -> None:
    name = pg.create_database("shared")
    stores = [Store(pg.url_for(name)) for _ in range(2)]
    upgrade(stores[0])
    try:
        with running_rewind(slack, stores[0]) as first, running_rewind(slack, stores[1]) as second:
            first.declare_here()
            ts = first.post("prices are gone")
            event = reaction_added("pushpin", DEFAULT_CHANNEL, ts)
            for instance in (first, second, first, second):
                instance.driver.event(event, event_id="EvSHARED")
            slack.wait_for("reactions.add")
            time.sleep(0.5)
            assert len([e for e in second.entries() if e.kind == "note"]) == 1
            assert len(slack.calls("reactions.add")) == 1
    finally:
        for store in stores:
            store.dispose()
        pg.drop_database(name)


def test_socket_mode_dispatch_path(slack: LocalSlack, store: Store) -> None:
    with running_rewind(slack, store) as rewind, SocketModeDriver(slack, rewind.app) as socket_mode:
        ack = socket_mode.command("declare Over the socket")
        assert ack["payload"]["text"] == f"Incident declared in <#{DEFAULT_CHANNEL}>: Over the socket"
        ts = rewind.post("seen over socket mode")
        socket_mode.event(reaction_added("pushpin", DEFAULT_CHANNEL, ts))
        slack.wait_for("reactions.add")
        assert any(e.text == "seen over socket mode" for e in rewind.entries())
        bad = socket_mode.command("frobnicate")
        assert "Try: `/inc help`" in bad["payload"]["text"]
