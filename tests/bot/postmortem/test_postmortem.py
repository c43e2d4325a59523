"""The post-mortem document, built from rows inserted directly in a real store (SQLite and Postgres).

Set REWIND_UPDATE_EXPECTED=1 to rewrite tests/bot/postmortem/expected/ after an intended change, then read the diff.
"""

import argparse
import json
import os
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import event

from bot.cli.postmortem import register as register_postmortem
from bot.config import Settings
from bot.errors import NotFoundError
from bot.postmortem.build import build_postmortem, find_incident_id, plain_text
from bot.postmortem.model import ProposalSummary
from bot.postmortem.render import format_duration, render_html, render_json, render_markdown
from bot.store import Store, upgrade
from bot.store.models import Entry, EntryReactor, Flag, Incident, Step, Task
from tests.pg import PgServer

EXPECTED = Path(__file__).parent / "expected"
NAMES = {"U4": "Dave", "U5": "Erin"}  # the directory knows these two; the others come from author_name or the id


def at(hhmm: str, day: int = 10) -> datetime:
    hours, minutes = hhmm.split(":")
    return datetime(2026, 3, day, int(hours), int(minutes), tzinfo=UTC)


def seed_incident(store: Store) -> int:
    """The sample incident: prices deleted by a cleanup script, restored from a replica of the 02:00 backup."""
    with store.transaction() as s:
        incident = Incident(
            channel_id="C0PRICES",
            channel_name="inc-prices",
            title="Prices missing on the storefront",
            status="resolved",
            declared_by="U1",
            declared_at=at("09:58"),
            resolved_at=at("11:10"),
        )
        s.add(incident)
        s.flush()

        def entry(kind: str, when: str, text: str, author: str, name: str | None, **extra: object) -> Entry:
            row = Entry(
                incident_id=incident.id,
                kind=kind,
                text=text,
                author_id=author,
                author_name=name,
                occurred_at=at(when),
                **extra,
            )
            s.add(row)
            s.flush()
            return row

        entry("status", "09:58", "Incident declared: Prices missing on the storefront", "U1", "Alice")
        entry("note", "09:40", "Noticed prices missing", "U1", "Alice", approximate=True)
        noticed = entry("note", "10:05", "Cleanup script ran at 09:12 against prod", "U2", "Bob")
        s.add(EntryReactor(entry_id=noticed.id, user_id="U5"))
        flag_backup = entry("flag", "10:12", "Orders placed after 02:00 are not in the backup", "U3", "Carol")
        entry("step", "10:15", "Step 1 started: Provision a replica from the 02:00 backup", "U2", "Bob")
        entry("assignment", "10:16", "Assigned to <@U3>: Check order totals", "U1", "Alice")
        flag_disk = entry("flag", "10:20", "Replica disk nearly full", "U3", "Carol")
        withdrawn = entry("note", "10:30", "oops, wrong channel", "U6", "Frank", deleted_at=at("10:31"))
        s.add(EntryReactor(entry_id=withdrawn.id, user_id="U6"))
        figures = {
            "backup_time": "2026-03-10T02:00:00+00:00",
            "damage_start": "2026-03-10T09:12:00+00:00",
            "damage_end": "2026-03-10T09:14:00+00:00",
            "tables": 3,
            "rows_missing": 1204,
        }
        entry("restore", "10:40", "Replica provisioned from the 02:00 backup", "U2", "Bob", data=figures)
        entry("impact", "10:41", "Prices missing for 1,204 products for ~90 minutes", "U1", "Alice")
        entry("cause", "10:43", "The cleanup script deleted price rows without a tenant filter", "U2", "Bob")
        entry("question", "10:44", "Why did the script have write access to prod?", "U3", "Carol")
        entry("note", "10:45", "Checked the `price|cost` view\nall rows present", "U4", None)
        entry(
            "note",
            "10:46",
            "Asked <@U2|bob> to post <https://grafana.example/d/1|the dashboard> in <#C0OPS|ops> &amp; &lt;b&gt;",
            "U1",
            "Alice",
        )
        entry("action", "10:47", "Action item to <@U2>: Add a tenant filter to the cleanup script", "U1", "Alice")
        entry("proposal", "10:50", "Proposal #1: re-insert prices on prod", "U2", "Bob", data={"rows_affected": 1204})
        entry(
            "execution",
            "11:02",
            "Executed proposal #1",
            "U2",
            "Bob",
            data={"row_counts": {"prices": 1204, "price_history": 10}},
        )
        entry("step", "11:03", "Step 1 done", "U2", "Bob")
        entry("status", "11:10", "Incident resolved", "U1", "Alice")

        s.add_all(
            [
                Flag(incident_id=incident.id, number=1, entry_id=flag_backup.id),
                Flag(
                    incident_id=incident.id,
                    number=2,
                    entry_id=flag_disk.id,
                    status="resolved",
                    resolution="grew the volume",
                    resolved_by="U2",
                    resolved_at=at("10:25"),
                ),
                Step(
                    incident_id=incident.id,
                    position=1,
                    title="Provision a replica",
                    owner_id="U2",
                    status="done",
                    started_at=at("10:15"),
                    done_at=at("11:03"),
                ),
                Step(
                    incident_id=incident.id,
                    position=2,
                    title="Verify order totals",
                    owner_id="U3",
                    status="in progress",
                    started_at=at("11:00"),
                ),
                Step(incident_id=incident.id, position=3, title="Post-incident review", owner_id="U1"),
                Task(
                    incident_id=incident.id,
                    kind="action",
                    number=1,
                    owner_id="U2",
                    text="Add a tenant filter to the cleanup script",
                    created_by="U1",
                    due_at=at("12:00", day=17),
                ),
                Task(
                    incident_id=incident.id,
                    kind="action",
                    number=2,
                    owner_id="U1",
                    text="Restrict write access to prod",
                    status="done",
                    created_by="U1",
                ),
                Task(
                    incident_id=incident.id,
                    kind="assignment",
                    number=1,
                    owner_id="U3",
                    text="Check order totals",
                    created_by="U1",
                ),
                Task(
                    incident_id=incident.id,
                    kind="assignment",
                    number=2,
                    owner_id="U1",
                    text="Ping support",
                    status="done",
                    created_by="U1",
                ),
            ]
        )
        return incident.id


BOTH_STORES = pytest.mark.parametrize("store", ["sqlite", "postgres"], indirect=True)


@pytest.fixture
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """SQLite, or Postgres too for the tests marked BOTH_STORES (the document must not depend on the dialect)."""
    if getattr(request, "param", "sqlite") == "sqlite":
        store = Store(f"sqlite:///{tmp_path / 'rewind.db'}")
        upgrade(store)
        yield store
        store.dispose()
        return
    pg: PgServer = request.getfixturevalue("pg")
    name = pg.create_database("pm")
    store = Store(pg.url_for(name))
    try:
        upgrade(store)
        yield store
    finally:
        store.dispose()
        pg.drop_database(name)


def expect(name: str, actual: str) -> None:
    path = EXPECTED / name
    if os.environ.get("REWIND_UPDATE_EXPECTED"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(actual)
    assert actual == path.read_text()


@BOTH_STORES
def test_markdown_matches_the_expected_document(store: Store) -> None:
    incident_id = seed_incident(store)
    pm = build_postmortem(store, incident_id, names=NAMES, zone="UTC")
    expect("prices.md", render_markdown(pm))


def test_display_zone_adds_a_column(store: Store) -> None:
    incident_id = seed_incident(store)
    pm = build_postmortem(store, incident_id, names=NAMES, zone="Europe/Paris")
    expect("prices_paris.md", render_markdown(pm))
    markdown = render_markdown(pm)
    assert "| Time (UTC) | Time (Europe/Paris) | Event |" in markdown
    assert "| ~09:40 | ~10:40 | Noticed prices missing — Alice |" in markdown


@BOTH_STORES
def test_json_rows_have_the_documented_shape(store: Store) -> None:
    incident_id = seed_incident(store)
    doc = json.loads(render_json(build_postmortem(store, incident_id, names=NAMES, zone="UTC")))
    rows = doc["timeline"]
    assert len(rows) == 18  # 19 entries, one withdrawn
    assert all(set(row) == {"time", "approximate", "author", "kind", "text"} for row in rows)
    assert rows[0] == {
        "time": "2026-03-10T09:40:00Z",
        "approximate": True,
        "author": "Alice",
        "kind": "note",
        "text": "Noticed prices missing",
    }
    assert {"kind": "execution", "text": "Executed proposal #1 (1,214 rows)"}.items() <= rows[-3].items()
    assert doc["header"]["participants"] == ["Alice", "Bob", "Carol", "Dave", "Erin"]
    assert [q["source"] for q in doc["open_questions"]] == ["Yellow flag #1", "Question"]
    assert doc["restore_figures"][0]["figures"]["rows_missing"] == 1204
    assert doc["restore_operations"] == []


@BOTH_STORES
def test_names_fall_back_to_author_name_then_id(store: Store) -> None:
    incident_id = seed_incident(store)
    pm = build_postmortem(store, incident_id, names={"U1": "Alice Liddell"}, zone="UTC")
    authors = {row.author for row in pm.timeline}
    assert authors == {"Alice Liddell", "Bob", "Carol", "U4"}
    assert "U5" in pm.header.participants


def test_restore_operations_hook_fills_the_section(store: Store) -> None:
    incident_id = seed_incident(store)
    proposal = ProposalSummary(
        number=1,
        target="prod",
        summary="re-insert prices",
        status="executed",
        proposer="Bob",
        approvers=["Alice", "Carol"],
        rows_affected=1204,
    )
    markdown = render_markdown(build_postmortem(store, incident_id, names=NAMES, proposals=[proposal]))
    assert "| 1 | prod | re-insert prices | executed | Bob | Alice, Carol | 1,204 |" in markdown
    assert "No restore operations" not in markdown


def test_html_is_escaped_and_well_formed(store: Store) -> None:
    incident_id = seed_incident(store)
    with store.transaction() as s:
        s.add(
            Entry(
                incident_id=incident_id,
                kind="note",
                text="<script>alert(1)</script> & more",
                author_id="U1",
                occurred_at=at("10:50"),
            )
        )
    page = render_html(build_postmortem(store, incident_id, names=NAMES, zone="Europe/Paris"))
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more — Alice" in page
    ET.fromstring(page.split("\n", 1)[1].replace('<meta charset="utf-8">', ""))  # XHTML-clean apart from meta


def test_incident_lookup_by_channel(store: Store) -> None:
    incident_id = seed_incident(store)
    assert find_incident_id(store, "#inc-prices") == incident_id
    assert find_incident_id(store, "C0PRICES") == incident_id
    with pytest.raises(NotFoundError, match="inc-nothing"):
        find_incident_id(store, "inc-nothing")
    with pytest.raises(NotFoundError):
        build_postmortem(store, incident_id + 1, names={})


def test_durations_read_naturally() -> None:
    assert format_duration(None) == "ongoing"
    assert format_duration(30) == "0 min"
    assert format_duration(72 * 60) == "1 h 12 min"
    assert format_duration(26 * 3600) == "1 d 2 h"


def run_cli(argv: list[str], database_url: str) -> int:
    parser = argparse.ArgumentParser(prog="rewind")
    register_postmortem(
        parser.add_subparsers(dest="command", required=True), lambda: Settings(database_url=database_url)
    )
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_writes_each_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'rewind.db'}"
    store = Store(url)
    upgrade(store)
    incident_id = seed_incident(store)
    store.dispose()

    assert run_cli(["postmortem", "--channel", "#inc-prices"], url) == 0
    markdown = capsys.readouterr().out
    assert markdown.startswith("# Post-mortem: Prices missing on the storefront")
    assert "Checked the `price\\|cost` view<br>all rows present — U4 |" in markdown  # no directory: the id

    out, picture = tmp_path / "pm.json", tmp_path / "pm.svg"
    assert (
        run_cli(
            [
                "postmortem",
                "--incident",
                str(incident_id),
                "--format",
                "json",
                "--out",
                str(out),
                "--picture",
                str(picture),
            ],
            url,
        )
        == 0
    )
    assert json.loads(out.read_text())["header"]["title"] == "Prices missing on the storefront"
    ET.fromstring(picture.read_text())

    page = tmp_path / "pm.html"
    assert run_cli(["postmortem", "--incident", str(incident_id), "--format", "html", "--out", str(page)], url) == 0
    assert page.read_text().startswith("<!DOCTYPE html>")


def test_cli_requires_exactly_one_incident_selector(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        run_cli(["postmortem", "--incident", "1", "--channel", "inc-x"], f"sqlite:///{tmp_path / 'r.db'}")
    with pytest.raises(SystemExit):
        run_cli(["postmortem"], f"sqlite:///{tmp_path / 'r.db'}")


def test_slack_markup_reads_as_in_the_channel() -> None:
    names = {"U2": "Bob"}.get

    def resolve(user_id: str) -> str:
        return names(user_id) or user_id

    assert plain_text("ask <@U2> and <@W9|x>", resolve) == "ask @Bob and @W9"
    assert plain_text("<!here> see <#C1|ops>", resolve) == "@here see #ops"
    assert (
        plain_text("<https://x.example/a|dash> <https://y.example>", resolve)
        == "dash (https://x.example/a) https://y.example"
    )
    assert plain_text("1 &lt; 2 &amp;&amp; <script>", resolve) == "1 < 2 && <script>"


def test_build_reads_each_table_once_whatever_the_size(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'rewind.db'}")
    upgrade(store)
    incident_id = seed_incident(store)
    with store.transaction() as s:
        s.add_all(
            Entry(incident_id=incident_id, kind="note", text=f"n{i}", author_id=f"U{i}", occurred_at=at("10:00"))
            for i in range(300)
        )
    statements: list[str] = []
    event.listen(store.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    pm = build_postmortem(store, incident_id, names=NAMES)
    store.dispose()
    assert len(pm.timeline) == 318
    # incident, entries, reactors, flags, steps, tasks: no query per entry
    assert len([s for s in statements if s.lstrip().upper().startswith("SELECT")]) == 6
