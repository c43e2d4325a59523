"""A scripted incident through signed Slack requests, and the post-mortem it publishes, compared with the
expected document."""

from pathlib import Path

from freezegun import freeze_time

from bot.localslack.standin import LocalSlack
from bot.store import Store
from tests.rewind_app import Rewind, eventually, running_rewind
from tests.slack_driver import DEFAULT_CHANNEL, reaction_added

EXPECTED = Path(__file__).resolve().parents[1] / "bot" / "postmortem" / "expected"


def play_incident(rewind: Rewind, slack: LocalSlack, frozen: object) -> None:
    """The incident that started Rewind, condensed: a script ran against prod at about 04:10."""
    driver = rewind.driver
    driver.command("declare Prices deleted by the consolidation script")
    driver.command("note ~04:10 consolidation script run against prod", user="U0BOB")
    driver.command("note at 09:12 support: ACME sees no prices on checkout")
    ts = rewind.post("19 products and 71 prices of ACME are gone; purchases point at nothing", user="U0CAROL")
    driver.event(reaction_added("pushpin", DEFAULT_CHANNEL, ts, user="U0BOB", item_user="U0CAROL"))
    slack.wait_for("reactions.add")
    driver.command("plan restore the 4am backup; diff products and prices; re-insert with dependents")
    driver.command("step 1 owner <@U0BOB>")
    driver.command("step 1 start", user="U0BOB")
    frozen.move_to("2026-01-22 10:45:00")  # type: ignore[attr-defined]
    driver.command("step 1 done", user="U0BOB")
    driver.command("flag payments made after 4am are not in the backup", user="U0CAROL")
    driver.command("flag the backup may lack invoices written at 03:59")
    driver.command("flag resolve 2 invoice 1042 is in the backup")
    driver.command("assign <@U0CAROL> list the purchases that point at deleted prices")
    driver.command("action <@U0BOB> refuse to run migration scripts against prod without a flag")
    driver.command("impact 19 products and 71 prices of ACME deleted; 13 products of other customers")
    driver.command("cause the consolidation script read prod credentials from a shared .env")
    driver.command("question why did the script's dry run not show the deletes?")
    frozen.move_to("2026-01-22 11:30:00")  # type: ignore[attr-defined]
    driver.command("resolve")


def test_scripted_incident_publishes_the_expected_postmortem(slack: LocalSlack, store: Store) -> None:
    with freeze_time("2026-01-22 10:00:00") as frozen, running_rewind(slack, store) as rewind:
        play_incident(rewind, slack, frozen)
        posts = slack.wait_for("chat.postMessage", 16)  # the header and every public confirmation
        [resolved] = [c for c in posts if "Incident resolved" in c.params["text"]]
        [offer] = [b for b in resolved.params["blocks"] if b["type"] == "actions"]
        assert offer["elements"][0]["action_id"] == "postmortem_write"

        reply = rewind.driver.command("postmortem").json()
        assert reply["text"] == ":hourglass_flowing_sand: Writing the post-mortem…"
        [upload] = slack.wait_for("files.completeUploadExternal")
        summary = slack.calls("chat.postMessage")[-1].params["text"]

    assert summary.startswith(":page_facing_up: *Post-mortem: Prices deleted by the consolidation script*")
    assert "1 open questions" not in summary and "2 open questions" in summary
    assert upload.params["channel_id"] == DEFAULT_CHANNEL
    files = {u.filename: u.data for u in slack.uploads()}
    markdown = files["inc-db-outage-postmortem.md"].decode()
    assert markdown == (EXPECTED / "scripted_incident.md").read_text()
    picture = files.get("inc-db-outage-timeline.png") or files["inc-db-outage-timeline.svg"]
    assert picture


def test_the_resolve_button_writes_it_too(slack: LocalSlack, store: Store) -> None:
    with running_rewind(slack, store) as rewind:
        rewind.declare_here("Short incident")
        rewind.driver.command("resolve")
        assert rewind.driver.action("postmortem_write", value=DEFAULT_CHANNEL).status == 200
        slack.wait_for("files.completeUploadExternal")
        assert any(u.filename.endswith("-postmortem.md") for u in slack.uploads())


def test_canvas_is_created_then_offered_for_update(slack: LocalSlack, store: Store) -> None:
    with running_rewind(slack, store) as rewind:
        rewind.declare_here("Canvas incident")
        rewind.driver.command("note backup located")
        created = rewind.driver.command("postmortem canvas")
        assert created.status == 200
        [canvas] = slack.canvases()
        assert "backup located" in canvas["document_content"]["markdown"]

        again = rewind.driver.command("postmortem canvas").json()
        assert "already has a canvas" in again["text"] and "postmortem canvas update" in again["text"]
        assert [b for b in again["blocks"] if b["type"] == "actions"]

        rewind.driver.command("note restore finished")
        rewind.driver.action("postmortem_canvas_update", value=DEFAULT_CHANNEL)
        updated = eventually(lambda: slack.canvases()[0]["changes"])
        assert "restore finished" in updated[0]["document_content"]["markdown"]
