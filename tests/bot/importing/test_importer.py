"""History import from a Slack workspace export (`rewind import slack-export`), on SQLite and on Postgres.

The export is the hand-made one in tests/fixtures/slack_export (the documented layout: channels.json, users.json and
one JSON file per day in the channel's folder), zipped at test time. Malformed variants replace one file.
"""

import json
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.cli import main
from bot.config import Settings
from bot.importing.export import MalformedExportError, read_slack_export
from bot.importing.rules import HistoryImporter, ImportResult
from bot.postmortem.build import build_postmortem, find_incident_id
from bot.postmortem.render import render_markdown
from bot.scribe.incidents import IncidentService
from bot.scribe.timeline import MessageRef, TimelineService
from bot.store import Store
from bot.store.models import Entry, EntryKind, EntryReactor, EntrySource, Flag, Incident, Task

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "slack_export"
CHANNEL = "inc-20260122-prices"
DAY1, DAY2 = f"{CHANNEL}/2026-01-22.json", f"{CHANNEL}/2026-01-23.json"


def make_export(tmp_path: Path, replace: dict[str, str | None] | None = None) -> Path:
    """Zip the fixture; `replace` swaps a file's content (None leaves it out)."""
    replace = replace or {}
    path = tmp_path / "export.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for file in sorted(FIXTURE.rglob("*.json")):
            name = file.relative_to(FIXTURE).as_posix()
            content = replace.get(name, file.read_text())
            if content is not None:
                archive.writestr(name, content)
        for name, content in replace.items():
            if content is not None and not (FIXTURE / name).exists():
                archive.writestr(name, content)
    return path


def run_import(store: Store, export: Path, channel: str = CHANNEL) -> ImportResult:
    history = read_slack_export(export, channel)
    settings = Settings(_env_file=None, database_url=store.url)  # type: ignore[call-arg]
    return HistoryImporter(store, settings).import_history(history.channel, history.messages, history.name_of)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def minute(when: datetime) -> str:
    """Messages carry microseconds in their ts; the timeline is read to the minute."""
    return f"{when.astimezone(UTC):%Y-%m-%d %H:%M}"


def snapshot(store: Store) -> list[tuple[object, ...]]:
    with store.transaction() as session:
        entries = session.execute(
            select(Entry.id, Entry.kind, Entry.text, Entry.author_id, Entry.occurred_at, Entry.deleted_at)
        ).all()
        flags = session.execute(select(Flag.number, Flag.status, Flag.resolution)).all()
        others = session.execute(select(Incident.id, Incident.title)).all() + session.execute(select(Task.id)).all()
        reactors = session.execute(select(EntryReactor.entry_id, EntryReactor.user_id)).all()
        return [tuple(r) for r in [*entries, *flags, *others, *reactors]]


def test_an_export_becomes_the_timeline(store: Store, tmp_path: Path) -> None:
    result = run_import(store, make_export(tmp_path))

    assert (result.notes, result.flags, result.other, result.already_present) == (6, 2, 2, 1)
    assert result.declared and result.bot_messages == 2
    assert result.skipped == ["`/inc plan` at 2026-01-23 00:35 UTC (run it again if it still applies)"]

    with store.transaction() as session:
        incident = session.scalars(select(Incident)).one()
        assert (incident.channel_id, incident.channel_name) == ("C0PRICES", CHANNEL)
        assert incident.title == "Prices deleted by the consolidation script"  # the purpose, before the topic
        # The first message that says something (the join is not one), by the channel's creator.
        assert (minute(incident.declared_at), incident.declared_by) == ("2026-01-22 23:31", "U0ALICE")
        rows = [
            (e.kind, e.text, e.author_name, minute(e.occurred_at), e.approximate, e.source)
            for e in session.scalars(select(Entry).order_by(Entry.occurred_at, Entry.id))
        ]
        reactors = {(e.text, r.user_id) for e in session.scalars(select(Entry)) for r in e.reactors}
        flags = {f.number: (f.entry.text, f.status, f.resolution) for f in session.scalars(select(Flag))}

    assert rows == [
        ("note", "the script ran against prod", "Alice Martin", "2026-01-22 23:10", True, "import"),  # edited
        ("note", "consolidation script started", "Bob Stone", "2026-01-22 23:20", False, "import"),  # typed
        (
            "status",
            "Incident declared: Prices deleted by the consolidation script",
            "Alice Martin",
            "2026-01-22 23:31",
            False,
            "command",
        ),
        ("note", "prices are gone for customer 42", "Alice Martin", "2026-01-22 23:31", False, "import"),
        ("flag", "backup may lack late invoices", "U0CAROL", "2026-01-22 23:40", False, "import"),  # not in users
        ("note", "restore started on replica", "Alice Martin", "2026-01-22 23:55", False, "import"),  # thread
        # Typed in the thread after midnight, in the next day's file.
        ("flag", "payments after 4am are not in the backup", "Bob Stone", "2026-01-23 00:05", False, "import"),
        ("note", "diff of prices (file: prices-diff.csv)", "Alice Martin", "2026-01-23 00:10", False, "import"),
        ("note", "Resolved: prices API 5xx", "pagerduty", "2026-01-23 00:20", False, "import"),  # another bot
        ("impact", "71 prices of one customer deleted", "dave-oncall", "2026-01-23 00:25", False, "import"),
        (
            "note",
            "Yellow flag 1 resolved: late invoices are in live",
            "Bob Stone",
            "2026-01-23 00:30",
            False,
            "import",
        ),
    ]
    # "/inc note reinsert done" was confirmed by the bot, so the bot had it: not applied again, and the
    # confirmation itself (pinned or not) never becomes an entry.
    assert not any("reinsert done" in row[1] for row in rows)
    assert ("prices are gone for customer 42", "U0BOB") in reactors  # the first user of the reaction
    assert ("the script ran against prod", "U0DAVE") in reactors
    assert flags == {
        1: ("backup may lack late invoices", "resolved", "late invoices are in live"),
        2: ("payments after 4am are not in the backup", "open", None),
    }


def test_importing_twice_changes_nothing(store: Store, tmp_path: Path) -> None:
    export = make_export(tmp_path)
    run_import(store, export)
    before = snapshot(store)

    again = run_import(store, export)

    assert (again.notes, again.flags, again.other, again.declared) == (0, 0, 0, False)
    assert again.already_present == 11 and not again.changed
    assert snapshot(store) == before


def test_an_existing_incident_is_kept_and_a_live_pin_is_not_doubled(store: Store, tmp_path: Path) -> None:
    """The bot was running for part of it: the 📌 it recorded live has the same message key as the import's."""
    export = make_export(tmp_path)
    settings = Settings(_env_file=None, database_url=store.url)  # type: ignore[call-arg]
    IncidentService(store).declare(title="Prices", user_id="U0BOB", channel_id="C0PRICES", channel_name=CHANNEL)
    ref = MessageRef(
        "C0PRICES", "1769124660.000100", "U0ALICE", "prices are gone for customer 42", at("2026-01-22 23:31")
    )
    TimelineService(store).record_message(ref, EntryKind.NOTE, "U0BOB", source=EntrySource.REACTION)

    history = read_slack_export(export, "#" + CHANNEL)
    result = HistoryImporter(store, settings).import_history(history.channel, history.messages, history.name_of)

    assert not result.declared and (result.notes, result.already_present) == (5, 2)
    with store.transaction() as session:
        assert session.scalar(select(Incident.title)) == "Prices"
        assert session.scalar(select(func.count()).where(Entry.text == "prices are gone for customer 42")) == 1


def _store_is_empty(store: Store) -> bool:
    with store.transaction() as session:
        return not any(session.scalar(select(func.count()).select_from(t)) for t in (Incident, Entry, Flag, Task))


@pytest.mark.parametrize(
    ("replace", "channel", "expected"),
    [
        ({"users.json": '[{"id": "U0ALICE", "name": "alice"'}, CHANNEL, "users.json is not valid JSON"),
        ({DAY2: "[{]"}, CHANNEL, f"{DAY2} is not valid JSON"),
        ({DAY1: '[{"type": "message", "text": "no ts"}]'}, CHANNEL, f"{DAY1}, item 1: ts: Field required"),
        ({DAY1: '{"messages": []}'}, CHANNEL, f"{DAY1} should hold a JSON list"),
        ({"channels.json": "[{}]"}, CHANNEL, "channels.json, item 1: id: Field required"),
        ({}, "inc-nope", "no channel 'inc-nope' in channels.json or groups.json"),
        ({"channels.json": None}, CHANNEL, "neither channels.json nor groups.json is in the zip"),
        ({DAY1: None, DAY2: None}, CHANNEL, f"its folder {CHANNEL}/ is missing"),
    ],
    ids=[
        "users-json",
        "day-json",
        "message-no-ts",
        "day-not-list",
        "channel-no-id",
        "no-channel",
        "no-listing",
        "no-folder",
    ],
)
def test_a_malformed_export_names_the_file_and_records_nothing(
    store: Store, tmp_path: Path, replace: dict[str, str | None], channel: str, expected: str
) -> None:
    export = make_export(tmp_path, replace)
    with pytest.raises(MalformedExportError) as failure:
        run_import(store, export, channel)
    assert expected in str(failure.value) and str(export) in str(failure.value)
    assert _store_is_empty(store)


def test_not_a_zip(store: Store, tmp_path: Path) -> None:
    export = tmp_path / "export.zip"
    export.write_bytes(b"PK not really")
    with pytest.raises(MalformedExportError, match=r"export\.zip: not a zip file"):
        run_import(store, export)
    assert _store_is_empty(store)


def test_a_private_channel_from_groups_json(store: Store, tmp_path: Path) -> None:
    groups = json.dumps([{"id": "G0SECRET", "name": "inc-secret", "created": 1769124600, "creator": "U0BOB"}])
    day = json.dumps([{"type": "message", "user": "U0BOB", "text": "/inc note 10:42 restored", "ts": "1769127000.1"}])
    export = make_export(tmp_path, {"groups.json": groups, "inc-secret/2026-01-23.json": day})
    result = run_import(store, export, "inc-secret")
    assert result.declared and result.notes == 1
    with store.transaction() as session:
        assert session.scalar(select(Incident.title)) == "inc-secret"  # no purpose or topic: the name
        assert session.scalar(select(Entry.text).where(Entry.kind == "note")) == "10:42 restored"  # no `at`: text


def test_the_cli_imports_and_reports(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REWIND_DATABASE_URL", store.url)
    monkeypatch.chdir(tmp_path)  # no .env from the checkout
    export = make_export(tmp_path)
    assert main(["import", "slack-export", str(export), "--channel", CHANNEL, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["channel"], report["notes"], report["flags"], report["declared"]) == (CHANNEL, 6, 2, True)

    assert main(["import", "slack-export", str(export), "--channel", CHANNEL]) == 0
    assert "0 notes, 0 flags imported, 11 already present" in capsys.readouterr().out

    (tmp_path / "broken").mkdir()
    broken = make_export(tmp_path / "broken", {DAY2: "nope"})
    assert main(["import", "slack-export", str(broken), "--channel", CHANNEL]) == 1
    assert f"{DAY2} is not valid JSON" in capsys.readouterr().err


def test_an_export_from_before_receipts_names_the_bot_with_an_option(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The bot's replies carry no metadata in older exports: `--bot` says which messages are its own."""
    monkeypatch.setenv("REWIND_DATABASE_URL", store.url)
    monkeypatch.chdir(tmp_path)
    day2 = json.loads((FIXTURE / DAY2).read_text())
    for message in day2:
        message.pop("metadata", None)
    export = make_export(tmp_path, {DAY2: json.dumps(day2)})

    assert main(["import", "slack-export", str(export), "--channel", CHANNEL, "--bot", "B0REWIND", "--json"]) == 0

    report = json.loads(capsys.readouterr().out)
    assert report["bot_messages"] == 2  # both of its messages, by its bot id
    with store.transaction() as session:
        texts = list(session.scalars(select(Entry.text)))
    assert not any("Noted:" in text for text in texts)  # its pinned reply is not an entry
    # Without a receipt nothing says the bot confirmed the typed `/inc note reinsert done`: it is applied.
    assert texts.count("reinsert done") == 1


def test_slack_escapes_in_an_export_are_undone_in_the_title_and_the_post_mortem(store: Store, tmp_path: Path) -> None:
    channels = (FIXTURE / "channels.json").read_text()
    channels = channels.replace("Prices deleted by the consolidation script", "Prices &amp; fees deleted")
    day1 = (FIXTURE / DAY1).read_text()
    day1 = day1.replace('"prices are gone for customer 42"', '"prices &amp; fees are gone for customer &lt;42&gt;"')
    run_import(store, make_export(tmp_path, {"channels.json": channels, DAY1: day1}))
    with store.transaction() as session:
        assert session.scalars(select(Incident.title)).all() == ["Prices & fees deleted"]
    incident_id = find_incident_id(store, CHANNEL)
    document = render_markdown(build_postmortem(store, incident_id, names={}))
    assert document.startswith("# Post-mortem: Prices & fees deleted")
    assert "prices & fees are gone for customer <42>" in document and "&amp;" not in document
