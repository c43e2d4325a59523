"""`rewind` as an operator runs it: start-up errors, migrations, and HTTP mode as a real process."""

import os
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from freezegun import freeze_time

from bot.localslack.standin import LocalSlack
from bot.store import Store
from restore.cluster import free_port
from tests.rewind_app import SIGNING_SECRET, prepare_workspace, running_rewind
from tests.slack_driver import DEFAULT_CHANNEL, SlackDriver, slash_command


def rewind_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "REWIND_"))}
    env["REWIND_DATABASE_URL"] = f"sqlite:///{tmp_path / 'rewind.db'}"
    env.update(extra)
    return env


def rewind(tmp_path: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        env=rewind_env(tmp_path, **extra),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("REWIND_HTTP_PORT", "eighty"),
        ("REWIND_TIMEZONE", "Mars/Olympus"),
        ("REWIND_SLASH_COMMAND", "inc"),
        ("REWIND_SLACK_API_URL", "slack.com/api"),
        ("REWIND_TARGETS", "[1, 2]"),
    ],
)
def test_a_bad_setting_stops_start_up_with_one_line_naming_it(tmp_path: Path, variable: str, value: str) -> None:
    done = rewind(tmp_path, "run", **{variable: value})
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and done.stderr.startswith(f"rewind: Invalid {variable}:")
    assert not (tmp_path / "rewind.db").exists()


def test_db_upgrade_creates_the_store(tmp_path: Path) -> None:
    done = rewind(tmp_path, "db", "upgrade")
    assert done.returncode == 0, done.stderr
    with sqlite3.connect(tmp_path / "rewind.db") as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"incidents", "entries", "flags", "steps", "tasks", "slack_events", "alembic_version"} <= tables


def test_http_mode_serves_events_and_healthz(tmp_path: Path) -> None:
    port = free_port()
    with LocalSlack() as slack:
        prepare_workspace(slack)
        process = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "run"],
            env=rewind_env(
                tmp_path,
                SLACK_BOT_TOKEN="xoxb-http-mode-secret",
                SLACK_SIGNING_SECRET=SIGNING_SECRET,
                REWIND_SLACK_API_URL=slack.url,
                REWIND_HTTP_PORT=str(port),
            ),
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            _wait_for_health(port)
            driver = SlackDriver(f"http://127.0.0.1:{port}", SIGNING_SECRET)
            reply = driver.command("declare Over HTTP")
            assert reply.status == 200 and "Incident declared" in reply.json()["text"]
        finally:
            process.terminate()
            output, _ = process.communicate(timeout=20)
    assert process.returncode == 0
    assert "xoxb-http-mode-secret" not in output and "listening on :" in output


def test_socket_mode_connects_through_the_configured_api_url(tmp_path: Path) -> None:
    with LocalSlack() as slack:
        prepare_workspace(slack)
        process = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "run"],
            env=rewind_env(
                tmp_path,
                SLACK_BOT_TOKEN="xoxb-socket-mode-secret",
                SLACK_APP_TOKEN="xapp-1-socket-mode-secret",
                REWIND_SLACK_API_URL=slack.url,
            ),
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            slack.wait_for_connection(30)
            envelope = slack.send_envelope("slash_commands", slash_command("declare Over the socket"))
            ack = slack.wait_for_ack(envelope, 10)
            assert ack["payload"]["text"] == f"Incident declared in <#{DEFAULT_CHANNEL}>: Over the socket"
            [opened] = slack.calls("apps.connections.open")
            assert opened.token == "xapp-1-socket-mode-secret"
        finally:
            process.terminate()
            output, _ = process.communicate(timeout=20)
    assert "socket-mode-secret" not in output


def _wait_for_health(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
                assert response.status == 200
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@freeze_time("2026-01-22 14:30:00", tick=True)
def test_typed_times_use_the_display_zone_and_are_stored_in_utc(store: Store) -> None:
    with LocalSlack() as slack:
        prepare_workspace(slack)
        with running_rewind(slack, store, timezone="Europe/Paris") as app:
            app.declare_here()
            app.driver.command("note at 10:42 backup located")
            [_, posted] = slack.wait_for("chat.postMessage", 2)
            assert "`2026-01-22 10:42 CET` backup located" in posted.params["text"]
            note = app.entries()[-1]
            assert note.occurred_at.isoformat() == "2026-01-22T09:42:00+00:00"
            assert app.services.incidents.get(DEFAULT_CHANNEL).declared_at.isoformat().startswith("2026-01-22T14:30")
