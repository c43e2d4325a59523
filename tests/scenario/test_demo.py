"""`rewind demo` driven through a pipe, as a newcomer's first ten minutes: replica, plan, two approvals, the rows back
in `shop`, a post-mortem, and nothing left behind."""

import os
import queue
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psycopg

DEMO_TIMEOUT_S = 120


class PipedDemo:
    """`rewind demo` with its stdin and stdout on pipes; lines are read as they come."""

    def __init__(self, cwd: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "REWIND_"))}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "demo"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=cwd,
            env=env,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def send(self, *lines: str) -> None:
        assert self.proc.stdin is not None
        for line in lines:
            self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def wait_for(self, pattern: str, timeout: float = DEMO_TIMEOUT_S) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        for line in self.lines:
            if match := re.search(pattern, line):
                return match
        while time.monotonic() < deadline:
            line = self._queue.get(timeout=max(0.1, deadline - time.monotonic()))
            if line is None:
                break
            self.lines.append(line)
            if match := re.search(pattern, line):
                return match
        raise AssertionError(f"never saw {pattern!r} in:\n" + "\n".join(self.lines))

    def finish(self) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        code = self.proc.wait(timeout=DEMO_TIMEOUT_S)
        while (line := self._queue.get(timeout=5)) is not None:
            self.lines.append(line)
        return code


def demo_folders() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("rewind-demo-*")}


def test_the_demo_restores_the_deleted_rows_through_a_pipe(tmp_path: Path) -> None:
    before = demo_folders()
    started = time.perf_counter()
    demo = PipedDemo(tmp_path)
    demo.wait_for(r"Try, in order:")
    demo.send("/inc replica up nightly", "/inc diff products")
    port = demo.wait_for(r"replica nightly-\w+ ready in .* port=(\d+)").group(1)
    demo.wait_for(r"Diff of products .*: 19 deleted, 1 added")
    shop = f"postgresql://postgres@127.0.0.1:{port}/shop"
    with psycopg.connect(shop) as conn:
        legacy_before = conn.execute("SELECT count(*) FROM products WHERE pricing_model = 'legacy'").fetchone()[0]

    demo.send("/inc deps products deleted", "/inc plan products deleted with dependents revert purchases.price_id")
    proposal = demo.wait_for(r"\[(\d+)\] rewind: :ballot_box_with_check: Proposal #1 on shop — proposed").group(1)
    demo.send(":user angi", f"+white_check_mark {proposal}", ":user bob", f"+white_check_mark {proposal}")
    demo.wait_for(r"Proposal #1 executed on shop: \d+ rows")
    demo.wait_for(r"Verification diff of products after proposal #1: 0 deleted rows left to restore")
    with psycopg.connect(shop) as conn:
        legacy_after = conn.execute("SELECT count(*) FROM products WHERE pricing_model = 'legacy'").fetchone()[0]
        repointed = conn.execute(
            "SELECT count(*) FROM purchases p JOIN prices pr ON pr.id = p.price_id JOIN products pd ON pd.id = "
            "pr.product_id WHERE pd.name = 'Consolidated plan' AND p.created_at < now() - interval '12 hours'"
        ).fetchone()[0]
    assert legacy_after == legacy_before + 19
    assert repointed == 0  # purchases from before the backup point at their own prices again

    demo.send("/inc postmortem")
    uploaded = demo.wait_for(r"rewind uploaded (\S+-postmortem\.md) → (\S+)")
    assert demo.finish() == 0
    elapsed = time.perf_counter() - started
    print(f"\nthe demo, from start to post-mortem through a pipe: {elapsed:.1f} s")

    postmortem = (tmp_path / uploaded.group(2)).read_text()
    assert "Legacy prices deleted by the consolidation script" in postmortem
    assert "| 1 | shop |" in postmortem and "executed" in postmortem  # the restore operation
    assert demo_folders() == before  # cluster stopped, folder removed
    assert not any("Traceback" in line for line in demo.lines), "\n".join(demo.lines)


def test_a_piped_script_runs_in_order_and_exits_zero(tmp_path: Path) -> None:
    before = demo_folders()
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", "demo"],
        input="/inc note hello from a pipe\n/inc timeline\n",
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=DEMO_TIMEOUT_S,
        env={k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "REWIND_"))},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.index("Noted") < out.index("Timeline:") and "hello from a pipe" in out[out.index("Timeline:") :]
    assert demo_folders() == before


def test_ctrl_c_stops_and_removes_everything(tmp_path: Path) -> None:
    before = demo_folders()
    demo = PipedDemo(tmp_path)
    demo.wait_for(r"Try, in order:")
    created = demo_folders() - before
    assert len(created) == 1
    demo.proc.send_signal(2)  # SIGINT, as Ctrl-C sends
    demo.proc.wait(timeout=60)
    assert demo_folders() == before


def test_the_demo_undoes_the_script_from_the_journal(tmp_path: Path) -> None:
    demo = PipedDemo(tmp_path)
    undo = demo.wait_for(r"(/inc undo \d+ \d+)").group(1)
    demo.send("/inc journal log")
    demo.wait_for(r"Journal shop: transactions: \d+ transactions")
    demo.send(undo)
    proposal = demo.wait_for(r"\[(\d+)\] rewind: :ballot_box_with_check: Proposal #1 on shop — proposed: undo 2").group(
        1
    )
    demo.send(":user angi", f"+white_check_mark {proposal}", ":user bob", f"+white_check_mark {proposal}")
    demo.wait_for(r"Proposal #1 executed on shop: \d+ rows")
    demo.send("/inc replica up nightly")
    port = demo.wait_for(r"replica nightly-\w+ ready in .* port=(\d+)").group(1)
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/shop") as conn:
        legacy = conn.execute("SELECT count(*) FROM products WHERE pricing_model = 'legacy'").fetchone()[0]
        consolidated = conn.execute(
            "SELECT count(*) FROM purchases p JOIN prices pr ON pr.id = p.price_id JOIN products pd ON "
            "pd.id = pr.product_id WHERE pd.name = 'Consolidated plan'"
        ).fetchone()[0]
        customers = conn.execute("SELECT count(*) FROM customers").fetchone()[0]
    assert legacy > 19 and consolidated == 0  # every purchase, after the backup too, points at its own price again
    assert customers == 615  # the merged duplicates are back
    assert demo.finish() == 0
