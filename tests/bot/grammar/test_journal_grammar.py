"""The journal's verbs and the new replica and backup verbs: typed text in, a typed command out."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from bot.errors import UsageError
from bot.grammar.commands import parse_command
from bot.grammar.journal import JournalLog, JournalStatus, Undo
from bot.grammar.restore import BackupVerify, ReplicaUp

NOW = datetime(2026, 1, 22, 12, 0, tzinfo=UTC)
PARIS = ZoneInfo("Europe/Paris")
UTC_ZONE = ZoneInfo("UTC")


def parse(text: str, zone: ZoneInfo = UTC_ZONE) -> object:
    return parse_command(text, now=NOW, zone=zone, slash="/inc")


def test_journal_status_and_log_with_a_window_read_in_the_display_zone() -> None:
    assert parse("journal") == JournalStatus()
    log = parse("journal log since 10:42 until 11:20 table products", PARIS)
    assert log == JournalLog(
        since=datetime(2026, 1, 22, 9, 42, tzinfo=UTC),
        until=datetime(2026, 1, 22, 10, 20, tzinfo=UTC),
        tables=["products"],
    )
    assert parse("journal log") == JournalLog()


def test_undo_by_ids_or_by_window() -> None:
    assert parse("undo 7712 7713, 9223372036854775807") == Undo(xids=[7712, 7713, 9223372036854775807])
    window = parse("undo since 2026-01-22 04:10 until 04:17 table prices table products")
    assert window == Undo(
        since=datetime(2026, 1, 22, 4, 10, tzinfo=UTC),
        until=datetime(2026, 1, 22, 4, 17, tzinfo=UTC),
        tables=["prices", "products"],
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("undo", "Say which transactions"),
        ("undo since 10:42", "needs both ends"),
        ("undo since 11:00 until 10:00", "`until` must come after `since`"),
        ("undo 12 twelve", "digits only"),
        ("journal log since soon", "needs a time"),
        ("journal log when 10:00", "I don't understand 'when'"),
        ("journal tail", "journal log"),
        ("replica up from", "which target to copy from"),
        ("backup verify", "backup verify <backup>"),
    ],
)
def test_bad_input_says_what_to_type(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message) as raised:
        parse(text)
    assert raised.value.example and raised.value.example.startswith("/inc ")


def test_replica_up_from_a_live_target_and_backup_verify() -> None:
    assert parse("replica up from prod-replica prices products") == ReplicaUp(
        source="prod-replica", tables=["prices", "products"]
    )
    assert parse("replica up nightly") == ReplicaUp(backup="nightly")
    assert parse("backup verify nightly") == BackupVerify(backup="nightly")
