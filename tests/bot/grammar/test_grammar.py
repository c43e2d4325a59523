"""The /inc grammar and typed times, as a person types them."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from freezegun import freeze_time

from bot.errors import UsageError
from bot.grammar.commands import (
    Declare,
    FlagRaise,
    FlagResolve,
    Listing,
    Note,
    Plan,
    StepUpdate,
    TaskCreate,
    parse_command,
)
from bot.grammar.times import split_leading_time

UTC_ZONE = ZoneInfo("UTC")
NOW = datetime(2026, 1, 22, 14, 30, tzinfo=UTC)


def parse(text: str, zone: ZoneInfo = UTC_ZONE):
    return parse_command(text, now=NOW, zone=zone)


def test_declare_and_adopt() -> None:
    assert parse("declare Prices vanished") == Declare(title="Prices vanished")
    assert parse("declare --here Prices vanished") == Declare(title="Prices vanished", here=True)


def test_note_backdated_exact_approximate_and_dated() -> None:
    assert parse("note at 10:42 backup found") == Note(text="backup found", at=NOW.replace(hour=10, minute=42))
    assert parse("note ~10:42 backup found") == Note(
        text="backup found", at=NOW.replace(hour=10, minute=42), approximate=True
    )
    assert parse("note at 2026-01-21 23:05 script ran").at == datetime(2026, 1, 21, 23, 5, tzinfo=UTC)
    assert parse("note plain words").at is None


def test_bare_time_later_than_now_means_yesterday() -> None:
    assert parse("note at 23:50 script started").at == datetime(2026, 1, 21, 23, 50, tzinfo=UTC)


def test_typed_times_are_read_in_the_display_zone_and_stored_in_utc() -> None:
    paris = ZoneInfo("Europe/Paris")
    assert parse("note at 10:42 x", zone=paris).at == datetime(2026, 1, 22, 9, 42, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("note at 25:99 x", "not a valid time"),
        ("note at 2026-13-01 10:00 x", "not a valid time"),
        ("note at 10:4x backup", "couldn't read the time"),
        ("note", "Say what happened"),
        ("bogus", "I don't know `/inc bogus`"),
        ("flag resolve x done", "by its number"),
        ("step two start", "step number"),
        ("step 2 jump", "step number"),
        ("assign alice do it", "not a user mention"),
        ("timeline 0", "from 1 to 200"),
        ("plan ;;", "Give the steps"),
    ],
)
def test_bad_input_explains_and_shows_an_example(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message) as caught:
        parse(text)
    assert caught.value.example


def test_the_rest_of_the_grammar() -> None:
    assert parse("flag backup may lack invoices") == FlagRaise(text="backup may lack invoices")
    assert parse("flag resolve 2 they are in live") == FlagResolve(number=2, resolution="they are in live")
    assert parse("plan restore; diff ; reinsert") == Plan(steps=["restore", "diff", "reinsert"])
    assert parse("step 2 owner <@U123|alice>") == StepUpdate(number=2, action="owner", owner="U123")
    assert parse("step 1 DONE") == StepUpdate(number=1, action="done")
    assert parse("assign <@U9> check backups") == TaskCreate(name="assign", owner="U9", text="check backups")
    assert parse("action @bob add a guard") == TaskCreate(name="action", owner="@bob", text="add a guard")
    assert parse("timeline 20") == Listing(name="timeline", limit=20)
    assert parse("") == Listing(name="help")


@freeze_time("2026-01-22 10:50:00")
def test_message_time_anchors_on_the_message_day() -> None:
    when, text = split_leading_time(
        "~10:42 prices gone", now=datetime.now(UTC), zone=UTC_ZONE, day=datetime(2026, 1, 20).date(), strict=False
    )
    assert when is not None and when.approximate and when.at == datetime(2026, 1, 20, 10, 42, tzinfo=UTC)
    assert text == "prices gone"
    none, same = split_leading_time("release 1:2 ok", now=datetime.now(UTC), zone=UTC_ZONE, strict=False)
    assert none is None and same == "release 1:2 ok"
