"""HTTP mode end to end: signed requests through bot/server.py into a real Bolt app, replies into the stand-in."""

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from slack_bolt import Ack, App, BoltRequest, Say
from slack_sdk import WebClient

from bot.localslack.standin import LocalSlack
from bot.localslack.workspace import BOT_USER_ID
from bot.runtime.http import HttpServer, serve_http
from tests.slack_driver import (
    JSON,
    SlackDriver,
    event_callback,
    message_event,
    reaction_added,
    sign,
    slash_command,
)

SECRET = "secret"


class Seen:
    """What the tiny app's listeners saw, so tests can assert a listener never ran."""

    def __init__(self) -> None:
        self.commands: list[dict[str, Any]] = []
        self.reactions: list[dict[str, Any]] = []
        self.retries: list[int] = []
        self.shortcuts: list[dict[str, Any]] = []
        self.actions: list[dict[str, Any]] = []
        self.lock = threading.Lock()


def tiny_app(slack: LocalSlack, seen: Seen) -> App:
    app = App(
        signing_secret=SECRET,
        client=WebClient(token="xoxb-test", base_url=slack.url),
    )

    @app.command("/ping")
    def ping(ack: Ack, command: dict[str, Any], client: WebClient) -> None:
        seen.commands.append(command)
        ack(text=f"pong: {command['text']}")
        client.chat_postMessage(channel=command["channel_id"], text=f"pinged by <@{command['user_id']}>")

    @app.event("reaction_added")
    def on_reaction(event: dict[str, Any], client: WebClient, request: BoltRequest) -> None:
        seen.reactions.append(event)
        seen.retries.append(int(request.headers.get("x-slack-retry-num", ["0"])[0]))
        client.reactions_add(channel=event["item"]["channel"], timestamp=event["item"]["ts"], name="eyes")

    @app.event("message")
    def on_message(say: Say) -> None:
        say("heard")

    @app.shortcut("add_to_timeline")
    def on_shortcut(ack: Ack, shortcut: dict[str, Any]) -> None:
        seen.shortcuts.append(shortcut)
        ack()

    @app.action("approve")
    def on_action(ack: Ack, body: dict[str, Any]) -> None:
        seen.actions.append(body)
        ack()

    return app


@pytest.fixture
def seen() -> Seen:
    return Seen()


@pytest.fixture
def server(empty_slack: LocalSlack, seen: Seen) -> Iterator[HttpServer]:
    with serve_http(tiny_app(empty_slack, seen), port=0, host="127.0.0.1") as running:
        yield running


@pytest.fixture
def driver(server: HttpServer) -> SlackDriver:
    return SlackDriver(server.url, SECRET)


@pytest.fixture
def channel(empty_slack: LocalSlack) -> str:
    return empty_slack.add_channel("inc-db-outage", members=[BOT_USER_ID, "U0ALICE"])


def test_signed_command_reaches_listener_and_reply_comes_back(
    driver: SlackDriver, empty_slack: LocalSlack, seen: Seen, channel: str
) -> None:
    resp = driver.command("hello", user="U0ALICE", channel=channel, command="/ping")

    assert resp.status == 200
    assert resp.text == "pong: hello"  # Bolt acks bare text as text/plain
    assert seen.commands[0]["user_id"] == "U0ALICE"
    posted = empty_slack.wait_for("chat.postMessage")[0]
    assert posted.params["channel"] == channel
    assert posted.params["text"] == "pinged by <@U0ALICE>"
    assert posted.token == "xoxb-test"
    assert [m["text"] for m in empty_slack.messages(channel)] == ["pinged by <@U0ALICE>"]


def test_reaction_event_runs_listener_which_calls_web_api(
    driver: SlackDriver, empty_slack: LocalSlack, seen: Seen, channel: str
) -> None:
    ts = empty_slack.post_as_user(channel, "U0ALICE", "the db is down")

    resp = driver.event(reaction_added("pushpin", channel, ts, user="U0BOB", item_user="U0ALICE"))

    assert resp.status == 200
    empty_slack.wait_for("reactions.add")
    assert seen.reactions[0]["item"] == {"type": "message", "channel": channel, "ts": ts}
    assert empty_slack.message(channel, ts)["reactions"] == [{"name": "eyes", "users": [BOT_USER_ID], "count": 1}]


def test_retry_headers_reach_the_listener(
    driver: SlackDriver, empty_slack: LocalSlack, seen: Seen, channel: str
) -> None:
    ts = empty_slack.post_as_user(channel, "U0ALICE", "x")
    driver.event(reaction_added("pushpin", channel, ts), event_id="Ev1", retry_num=1, retry_reason="http_timeout")
    empty_slack.wait_for("reactions.add")
    assert seen.retries == [1]


def test_message_event_say_posts_in_channel(driver: SlackDriver, empty_slack: LocalSlack, channel: str) -> None:
    driver.event(message_event("anyone?", channel=channel))
    assert empty_slack.wait_for("chat.postMessage")[0].params["text"] == "heard"


def test_shortcut_and_action_reach_listeners(
    driver: SlackDriver, seen: Seen, empty_slack: LocalSlack, channel: str
) -> None:
    ts = empty_slack.post_as_user(channel, "U0ALICE", "row count is 0")
    message = empty_slack.message(channel, ts)

    assert driver.shortcut("add_to_timeline", message, channel=channel).status == 200
    assert driver.action("approve", value="42", channel=channel).status == 200

    assert seen.shortcuts[0]["message"]["text"] == "row count is 0"
    assert seen.shortcuts[0]["channel"]["id"] == channel
    assert seen.actions[0]["actions"][0]["value"] == "42"


def _ping_body() -> str:
    from urllib.parse import urlencode

    return urlencode(slash_command("hi", command="/ping"))


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(lambda body: sign("wrong-secret", body), id="forged"),
        pytest.param(lambda body: sign(SECRET, body, timestamp=int(time.time()) - 6 * 60), id="stale"),
        pytest.param(lambda body: {"Content-Type": "application/x-www-form-urlencoded"}, id="missing"),
        pytest.param(
            lambda body: {**sign(SECRET, body), "X-Slack-Signature": "v0=" + "0" * 64},
            id="bad-digest",
        ),
    ],
)
def test_unsigned_or_badly_signed_requests_get_401(driver: SlackDriver, seen: Seen, headers: Any) -> None:
    body = _ping_body()
    resp = driver.post(body, headers(body))
    assert resp.status == 401
    assert seen.commands == []


def test_body_tampered_after_signing_gets_401(driver: SlackDriver, seen: Seen) -> None:
    body = _ping_body()
    resp = driver.post(body.replace("hi", "rm"), sign(SECRET, body))
    assert resp.status == 401
    assert seen.commands == []


def test_event_signed_with_json_content_type(driver: SlackDriver, empty_slack: LocalSlack, channel: str) -> None:
    ts = empty_slack.post_as_user(channel, "U0ALICE", "x")
    body = json.dumps(event_callback(reaction_added("pushpin", channel, ts)))
    assert driver.post(body, sign(SECRET, body, content_type=JSON)).status == 200


def test_url_verification_challenge(driver: SlackDriver) -> None:
    body = json.dumps({"token": "t", "challenge": "abc123", "type": "url_verification"})
    resp = driver.post(body, sign(SECRET, body, content_type=JSON))
    assert resp.status == 200
    assert resp.json() == {"challenge": "abc123"}


def test_keep_alive_connection_serves_many_requests(server: HttpServer, seen: Seen, channel: str) -> None:
    driver = SlackDriver(server.url, SECRET, keep_alive=True)
    for i in range(20):
        assert driver.command(str(i), channel=channel, command="/ping").text == f"pong: {i}"
    assert len(seen.commands) == 20


def test_healthz_and_unknown_paths(driver: SlackDriver, seen: Seen) -> None:
    health = driver.get("/healthz")
    assert (health.status, health.json()) == (200, {"ok": True})
    assert driver.get("/nope").status == 404
    other = SlackDriver(driver.base_url, SECRET, path="/elsewhere")
    assert other.command("x", command="/ping").status == 404
    assert seen.commands == []


def test_healthz_reports_a_failing_check(empty_slack: LocalSlack, seen: Seen) -> None:
    def broken() -> bool:
        raise RuntimeError("store is down")

    with serve_http(tiny_app(empty_slack, seen), port=0, host="127.0.0.1", health_check=broken) as running:
        health = SlackDriver(running.url, SECRET).get("/healthz")
    assert (health.status, health.json()) == (503, {"ok": False})


def test_stop_releases_the_port(empty_slack: LocalSlack, seen: Seen) -> None:
    running = serve_http(tiny_app(empty_slack, seen), port=0, host="127.0.0.1")
    port = running.port
    running.stop()
    again = serve_http(tiny_app(empty_slack, seen), port=port, host="127.0.0.1")
    try:
        assert again.port == port
    finally:
        again.stop()
