"""Shell mode, driven through stdin and stdout of `rewind run` with no Slack tokens."""

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

SCRIPT = """\
/inc declare Prices vanished from prod
prices for acme are gone since ~04:10
+pushpin 2
+pushpin 2
/inc note ~04:12 consolidation script started
/inc flag backup may lack late invoices
/inc step 1 start
/inc bogus
+large_yellow_circle 2
-pushpin 2
-pushpin 2
/inc timeline
:quit
"""


def run_shell(tmp_path: Path, script: str) -> tuple[str, Path]:
    db = tmp_path / "shell.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "REWIND_"))}
    env["REWIND_DATABASE_URL"] = f"sqlite:///{db}"
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", "run"],
        input=script,
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout, db


def test_shell_declares_notes_and_pins(tmp_path: Path) -> None:
    out, db = run_shell(tmp_path, SCRIPT)
    lines = out.splitlines()
    assert lines[0].startswith("Rewind shell: you are in #general")
    assert any("rewind: Incident declared: Prices vanished from prod" in line for line in lines)
    assert "(shell) now in #inc-" in out
    assert "[2] you: prices for acme are gone since ~04:10" in lines
    assert out.count("rewind reacted :memo: to [2]") == 1
    assert "(shell) Slack says already_reacted." in out  # as in Slack, one person pins a message once
    assert "rewind: :pushpin: Noted: `~" in out and "consolidation script started — @You (shell)" in out
    assert "Yellow flag 1 raised: backup may lack late invoices" in out
    assert "(only you) rewind: :warning: There is no step 1: there is no run of show yet." in out
    assert "(only you) rewind: :warning: I don't know `/inc bogus`." in out
    assert "↳ [" in out and "Yellow flag 2 raised from this message." in out

    assert "(shell) Slack says no_reaction." in out  # the second -pushpin: nothing left to take back
    timeline = out[out.rindex("(only you) rewind: Timeline:") :]
    assert "Yellow flag: prices for acme" in timeline and "— Alice" not in timeline
    assert timeline.count("prices for acme are gone") == 1  # the pinned note is withdrawn, the flag stays

    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT kind, text, source, approximate FROM entries ORDER BY id").fetchall()
        deleted = conn.execute("SELECT kind FROM entries WHERE deleted_at IS NOT NULL").fetchall()
    assert deleted == [("note",)]
    assert rows == [
        ("status", "Incident declared: Prices vanished from prod", "command", 0),
        ("note", "prices for acme are gone since ~04:10", "reaction", 0),
        ("note", "consolidation script started", "command", 1),
        ("flag", "backup may lack late invoices", "command", 0),
        ("flag", "prices for acme are gone since ~04:10", "reaction", 0),
    ]


SHOWS_SCRIPT = """\
/inc declare Prices & fees vanished
R&D says <b> is gone
+pushpin 2
/inc import-history
/inc postmortem
/inc postmortem canvas
/inc postmortem canvas update
/inc bogus
:quit
"""


def test_the_shell_shows_uploads_edits_and_canvases_and_undoes_slack_escapes(tmp_path: Path) -> None:
    out, _db = run_shell(tmp_path, SHOWS_SCRIPT)
    lines = out.splitlines()
    assert any(line.endswith("rewind: Incident declared: Prices & fees vanished") for line in lines), out
    assert "&amp;" not in out and "&lt;" not in out
    day = next(line for line in lines if line.startswith("(shell) now in #inc-"))
    channel = day.removeprefix("(shell) now in #")
    assert channel.endswith("-prices-fees-vanished")  # the slug is made from "&", not from "&amp;"
    assert "[2] you: R&D says <b> is gone" in lines

    assert any(line.startswith("(edited) [") and "History read:" in line for line in lines), out
    uploaded = [line for line in lines if " rewind uploaded " in line]
    assert len(uploaded) == 2 and all(line.startswith("[") for line in uploaded)
    md_line = next(line for line in uploaded if "postmortem.md" in line)
    saved = tmp_path / md_line.split(" → ")[1]
    assert saved.parent == tmp_path / "rewind-files"
    document = saved.read_text()
    assert document.startswith("# Post-mortem: Prices & fees vanished") and "R&D says <b> is gone" in document

    canvas_lines = [line for line in lines if "the canvas" in line]
    assert [line.split(" the canvas")[0] for line in canvas_lines] == ["rewind wrote", "rewind updated"]
    canvas = tmp_path / canvas_lines[-1].split(" → ")[1]
    assert canvas.read_text().startswith("# Post-mortem: Prices & fees vanished")
    assert "(only you) rewind: :warning: I don't know `/inc bogus`." in out
