"""The local Slack stand-in behaves like Slack for the methods the bot uses, and carries Socket Mode traffic."""

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from freezegun import freeze_time
from slack_bolt import Ack, App, Say
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

from bot.localslack.standin import LocalSlack, RecordedCall
from bot.localslack.workspace import BOT_USER_ID
from tests.slack_driver import SocketModeDriver, message_event, reaction_added


@pytest.fixture
def client(empty_slack: LocalSlack) -> WebClient:
    return WebClient(token="xoxb-test", base_url=empty_slack.url)


def error_of(call: Any) -> str:
    with pytest.raises(SlackApiError) as info:
        call()
    return str(info.value.response["error"])


def test_auth_test_names_the_bot(client: WebClient, empty_slack: LocalSlack) -> None:
    resp = client.auth_test()
    assert (resp["user_id"], resp["bot_id"], resp["team_id"]) == (BOT_USER_ID, "B0REWIND", "T0LOCAL")
    assert empty_slack.calls("auth.test")[0].token == "xoxb-test"


def test_channels_are_created_once_with_valid_names(client: WebClient, empty_slack: LocalSlack) -> None:
    created = client.conversations_create(name="inc-2026-db-outage")["channel"]
    assert created["id"].startswith("C")
    assert created["is_member"] is True

    assert error_of(lambda: client.conversations_create(name="inc-2026-db-outage")) == "name_taken"
    assert error_of(lambda: client.conversations_create(name="Inc DB!")) == "invalid_name_specials"
    assert error_of(lambda: client.conversations_create(name="x" * 81)) == "invalid_name_maxlength"
    assert client.conversations_info(channel=created["id"])["channel"]["name"] == "inc-2026-db-outage"
    assert error_of(lambda: client.conversations_info(channel="C404")) == "channel_not_found"


def test_invite_and_join_track_members(client: WebClient, empty_slack: LocalSlack) -> None:
    empty_slack.add_user("U0ALICE", "alice", real_name="Alice Liddell", display_name="alice")
    channel = empty_slack.add_channel("general")
    assert empty_slack.channel(channel)["is_member"] is False

    client.conversations_join(channel=channel)
    client.conversations_invite(channel=channel, users=["U0ALICE"])

    assert empty_slack.channel_members(channel) == {BOT_USER_ID, "U0ALICE"}
    assert error_of(lambda: client.conversations_invite(channel=channel, users="U0ALICE")) == "already_in_channel"
    assert error_of(lambda: client.conversations_invite(channel=channel, users="U0NOBODY")) == "user_not_found"


def test_post_thread_update_and_permalink(client: WebClient, empty_slack: LocalSlack) -> None:
    channel = empty_slack.add_channel("inc-1", members=[BOT_USER_ID])
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*Declared*"}}]

    parent = client.chat_postMessage(channel=channel, text="declared", blocks=blocks)
    reply = client.chat_postMessage(channel=channel, text="noted", thread_ts=parent["ts"])
    client.chat_update(channel=channel, ts=parent["ts"], text="declared (sev1)")

    assert parent["message"]["blocks"] == blocks
    assert empty_slack.calls("chat.postMessage")[0].params["blocks"] == blocks
    stored = empty_slack.message(channel, parent["ts"])
    assert (stored["text"], stored["reply_count"], stored["latest_reply"]) == ("declared (sev1)", 1, reply["ts"])
    link = client.chat_getPermalink(channel=channel, message_ts=parent["ts"])["permalink"]
    assert link == f"https://rewind-local.slack.com/archives/{channel}/p{parent['ts'].replace('.', '')}"
    reply_link = client.chat_getPermalink(channel=channel, message_ts=reply["ts"])["permalink"]
    assert reply_link.endswith(f"?thread_ts={parent['ts']}&cid={channel}")


def test_only_the_bots_own_messages_can_be_updated(client: WebClient, empty_slack: LocalSlack) -> None:
    channel = empty_slack.add_channel("inc-1")
    ts = empty_slack.post_as_user(channel, "U0ALICE", "mine")
    assert error_of(lambda: client.chat_update(channel=channel, ts=ts, text="x")) == "cant_update_message"
    assert error_of(lambda: client.chat_update(channel=channel, ts="1.000001", text="x")) == "message_not_found"


def test_ephemeral_messages_stay_out_of_history(client: WebClient, empty_slack: LocalSlack) -> None:
    empty_slack.add_user("U0ALICE", "alice")
    channel = empty_slack.add_channel("inc-1")
    resp = client.chat_postEphemeral(channel=channel, user="U0ALICE", text="only you")
    assert resp["message_ts"]
    assert empty_slack.ephemeral_messages()[0]["to_user"] == "U0ALICE"
    assert client.conversations_history(channel=channel)["messages"] == []


def test_ts_are_unique_and_increasing_even_when_time_is_frozen(client: WebClient, empty_slack: LocalSlack) -> None:
    channel = empty_slack.add_channel("inc-1")
    with freeze_time("2026-01-26 04:00:00"):
        stamps = [client.chat_postMessage(channel=channel, text=str(i))["ts"] for i in range(5)]
        injected = empty_slack.post_as_user(channel, "U0ALICE", "hi")
    assert stamps[0] == "1769400000.000000"
    assert stamps == sorted(set(stamps), key=float)
    assert float(injected) > float(stamps[-1])


def test_reactions_add_and_remove_with_slack_errors(client: WebClient, empty_slack: LocalSlack) -> None:
    channel = empty_slack.add_channel("inc-1")
    ts = empty_slack.post_as_user(channel, "U0ALICE", "row count 0")
    empty_slack.react_as_user(channel, ts, "U0ALICE", "pushpin")

    client.reactions_add(channel=channel, timestamp=ts, name="pushpin")

    assert empty_slack.message(channel, ts)["reactions"] == [
        {"name": "pushpin", "users": ["U0ALICE", BOT_USER_ID], "count": 2}
    ]
    assert error_of(lambda: client.reactions_add(channel=channel, timestamp=ts, name="pushpin")) == "already_reacted"
    client.reactions_remove(channel=channel, timestamp=ts, name="pushpin")
    assert error_of(lambda: client.reactions_remove(channel=channel, timestamp=ts, name="pushpin")) == "no_reaction"
    assert empty_slack.message(channel, ts)["reactions"][0]["users"] == ["U0ALICE"]


def test_users_info_returns_configured_names(client: WebClient, empty_slack: LocalSlack) -> None:
    empty_slack.add_user("U0ALICE", "alice", real_name="Alice Liddell", display_name="ali", tz="Europe/Paris")
    user = client.users_info(user="U0ALICE")["user"]
    assert (user["real_name"], user["profile"]["display_name"], user["tz"]) == ("Alice Liddell", "ali", "Europe/Paris")
    assert error_of(lambda: client.users_info(user="U0NOBODY")) == "user_not_found"


def test_history_paginates_newest_first_within_a_window(client: WebClient, empty_slack: LocalSlack) -> None:
    channel = empty_slack.add_channel("inc-1")
    stamps = [empty_slack.post_as_user(channel, "U0ALICE", f"m{i}", ts=f"1769400{i:03d}.000100") for i in range(7)]
    empty_slack.post_as_user(channel, "U0BOB", "in a thread", thread_ts=stamps[0])

    pages = [page["messages"] for page in client.conversations_history(channel=channel, limit=3)]
    assert [[m["text"] for m in page] for page in pages] == [["m6", "m5", "m4"], ["m3", "m2", "m1"], ["m0"]]

    window = client.conversations_history(channel=channel, oldest=stamps[1], latest=stamps[4])["messages"]
    assert [m["text"] for m in window] == ["m3", "m2"]
    inclusive = client.conversations_history(channel=channel, oldest=stamps[1], latest=stamps[4], inclusive=True)
    assert [m["text"] for m in inclusive["messages"]] == ["m4", "m3", "m2", "m1"]


def test_replies_paginate_parent_first(client: WebClient, empty_slack: LocalSlack) -> None:
    channel = empty_slack.add_channel("inc-1")
    parent = empty_slack.post_as_user(channel, "U0ALICE", "parent")
    for i in range(4):
        empty_slack.post_as_user(channel, "U0BOB", f"r{i}", thread_ts=parent)

    first = client.conversations_replies(channel=channel, ts=parent, limit=2)
    assert [m["text"] for m in first["messages"]] == ["parent", "r0"]
    assert first["has_more"] is True
    rest = client.conversations_replies(
        channel=channel, ts=parent, limit=10, cursor=first["response_metadata"]["next_cursor"]
    )
    assert [m["text"] for m in rest["messages"]] == ["r1", "r2", "r3"]
    assert rest["response_metadata"]["next_cursor"] == ""
    assert error_of(lambda: client.conversations_replies(channel=channel, ts="1.000002")) == "thread_not_found"


def test_files_upload_v2_round_trips(client: WebClient, empty_slack: LocalSlack) -> None:
    channel = empty_slack.add_channel("inc-1")
    resp = client.files_upload_v2(
        channel=channel, content=b"\x89PNG timeline", filename="timeline.png", title="Timeline", initial_comment="here"
    )

    upload = empty_slack.uploads()[0]
    assert (upload.data, upload.title, upload.filename, upload.channel_id) == (
        b"\x89PNG timeline",
        "Timeline",
        "timeline.png",
        channel,
    )
    assert resp["file"]["id"] == upload.file_id
    shared = empty_slack.messages(channel)[-1]
    assert (shared["text"], shared["files"][0]["id"]) == ("here", upload.file_id)
    assert [c.method for c in empty_slack.calls()] == ["files.getUploadURLExternal", "files.completeUploadExternal"]


def test_canvases_and_views_are_accepted_and_recorded(client: WebClient, empty_slack: LocalSlack) -> None:
    channel = empty_slack.add_channel("inc-1")
    content = {"type": "markdown", "markdown": "# Post-mortem"}

    canvas = client.canvases_create(title="PM", document_content=content)["canvas_id"]
    client.conversations_canvases_create(channel_id=channel, document_content=content)
    assert error_of(lambda: client.conversations_canvases_create(channel_id=channel, document_content=content)) == (
        "channel_canvas_already_exists"
    )
    view = client.views_open(trigger_id="1.2.abc", view={"type": "modal", "title": {"type": "plain_text", "text": "x"}})
    client.views_publish(user_id="U0ALICE", view={"type": "home", "blocks": []})

    assert empty_slack.canvases()[0]["id"] == canvas
    assert empty_slack.canvases()[0]["document_content"] == content
    assert view["view"]["id"].startswith("V")
    assert [v["type"] for v in empty_slack.views()] == ["modal", "home"]


def test_unknown_methods_and_missing_tokens_fail_like_slack(client: WebClient, empty_slack: LocalSlack) -> None:
    assert error_of(lambda: client.api_call("chat.teleport")) == "unknown_method"
    assert empty_slack.calls("chat.teleport")[0].response == {"ok": False, "error": "unknown_method"}
    assert error_of(lambda: WebClient(base_url=empty_slack.url).auth_test()) == "not_authed"


def test_fail_next_injects_one_error(client: WebClient, empty_slack: LocalSlack) -> None:
    channel = empty_slack.add_channel("inc-1")
    empty_slack.fail_next("chat.postMessage", "is_archived")
    assert error_of(lambda: client.chat_postMessage(channel=channel, text="x")) == "is_archived"
    assert client.chat_postMessage(channel=channel, text="x")["ok"] is True


def test_rate_limit_is_retried_by_the_sdk_retry_handler(empty_slack: LocalSlack) -> None:
    channel = empty_slack.add_channel("inc-1")
    empty_slack.rate_limit_next("chat.postMessage", retry_after=0, times=1)
    client = WebClient(
        token="xoxb-test", base_url=empty_slack.url, retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=1)]
    )

    assert client.chat_postMessage(channel=channel, text="eventually")["ok"] is True
    assert [c.status for c in empty_slack.calls("chat.postMessage")] == [429, 200]

    empty_slack.rate_limit_next("chat.postMessage", retry_after=7)
    with pytest.raises(SlackApiError) as info:
        WebClient(token="xoxb-test", base_url=empty_slack.url).chat_postMessage(channel=channel, text="x")
    assert info.value.response.status_code == 429
    assert info.value.response.headers["Retry-After"] == "7"


def test_wait_for_sees_calls_made_from_other_threads(client: WebClient, empty_slack: LocalSlack) -> None:
    channel = empty_slack.add_channel("inc-1")
    threading.Timer(0.05, lambda: client.chat_postMessage(channel=channel, text="later")).start()
    assert empty_slack.wait_for("chat.postMessage", timeout=5)[0].params["text"] == "later"
    with pytest.raises(TimeoutError):
        empty_slack.wait_for("chat.postMessage", count=2, timeout=0.1)


def test_on_call_listeners_see_each_call_until_unsubscribed(client: WebClient, empty_slack: LocalSlack) -> None:
    seen: list[RecordedCall] = []
    unsubscribe = empty_slack.on_call(seen.append)
    client.auth_test()
    unsubscribe()
    client.auth_test()
    assert [c.method for c in seen] == ["auth.test"]
    assert seen[0].response["user_id"] == BOT_USER_ID


def test_clear_forgets_calls_but_keeps_state(client: WebClient, empty_slack: LocalSlack) -> None:
    channel = empty_slack.add_channel("inc-1")
    client.chat_postMessage(channel=channel, text="x")
    empty_slack.clear()
    assert empty_slack.calls() == []
    assert len(empty_slack.messages(channel)) == 1


# ---------------------------------------------------------------- Socket Mode


def socket_app(slack: LocalSlack, seen: list[dict[str, Any]]) -> App:
    app = App(signing_secret="secret", client=WebClient(token="xoxb-test", base_url=slack.url))

    @app.command("/ping")
    def ping(ack: Ack, command: dict[str, Any], client: WebClient) -> None:
        seen.append(command)
        ack(blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": f"pong {command['text']}"}}])
        client.chat_postMessage(channel=command["channel_id"], text="pinged")

    @app.event("reaction_added")
    def on_reaction(event: dict[str, Any], client: WebClient) -> None:
        seen.append(event)
        client.reactions_add(channel=event["item"]["channel"], timestamp=event["item"]["ts"], name="eyes")

    @app.event("message")
    def on_message(say: Say) -> None:
        say("heard")

    return app


@pytest.fixture
def socket_seen() -> list[dict[str, Any]]:
    return []


@pytest.fixture
def socket_driver(empty_slack: LocalSlack, socket_seen: list[dict[str, Any]]) -> Iterator[SocketModeDriver]:
    with SocketModeDriver(empty_slack, socket_app(empty_slack, socket_seen)) as driver:
        yield driver


def test_socket_mode_hello_and_connection_open(socket_driver: SocketModeDriver, empty_slack: LocalSlack) -> None:
    opened = empty_slack.calls("apps.connections.open")
    assert opened[0].token.startswith("xapp-")
    assert opened[0].response["url"].startswith("ws://127.0.0.1:")
    assert socket_driver.handler.client.is_connected()


def test_socket_mode_command_acks_with_the_response_payload(
    socket_driver: SocketModeDriver, empty_slack: LocalSlack, socket_seen: list[dict[str, Any]]
) -> None:
    channel = empty_slack.add_channel("inc-1")
    ack = socket_driver.command("hello", channel=channel, command="/ping")

    assert ack["payload"]["blocks"][0]["text"]["text"] == "pong hello"
    assert socket_seen[0]["text"] == "hello"
    assert empty_slack.wait_for("chat.postMessage")[0].params["channel"] == channel


def test_socket_mode_events_reach_listeners(
    socket_driver: SocketModeDriver, empty_slack: LocalSlack, socket_seen: list[dict[str, Any]]
) -> None:
    channel = empty_slack.add_channel("inc-1")
    ts = empty_slack.post_as_user(channel, "U0ALICE", "x")

    ack = socket_driver.event(reaction_added("pushpin", channel, ts))
    socket_driver.event(message_event("hello?", channel=channel))

    assert "payload" not in ack
    empty_slack.wait_for("reactions.add")
    assert empty_slack.wait_for("chat.postMessage")[0].params["text"] == "heard"
    assert socket_seen[0]["reaction"] == "pushpin"


def test_socket_mode_large_envelopes_survive_framing(socket_driver: SocketModeDriver, empty_slack: LocalSlack) -> None:
    channel = empty_slack.add_channel("inc-1")
    ack = socket_driver.command("x" * 70_000, channel=channel, command="/ping")
    assert ack["payload"]["blocks"][0]["text"]["text"] == "pong " + "x" * 70_000


def test_socket_mode_client_reconnects_on_disconnect_request(empty_slack: LocalSlack) -> None:
    app = socket_app(empty_slack, [])
    with SocketModeDriver(empty_slack, app) as driver:
        driver.handler.client.auto_reconnect_enabled = True
        empty_slack.send_disconnect()
        empty_slack.wait_for("apps.connections.open", count=2)
        channel = empty_slack.add_channel("inc-1")
        assert driver.command("again", channel=channel, command="/ping")["payload"]
