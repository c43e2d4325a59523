"""Ack latency: Rewind against a no-op Bolt app on the same HTTP stack (bot/server.py), in the same run.

Each app is served from its own process (as in production, so one app's background work cannot steal the other's
GIL). One sender replays a fixed schedule of signed slash commands (`/inc note …`) and 📌 `reaction_added` events at
`--rate` per second; every slot goes to both apps, in alternating order, so machine noise hits both alike. Latency is
request start to full response, per app. Targets: Rewind p99 <= 1.3 x the no-op app's p99, and never above 300 ms.

    .venv/bin/python bench/ack_latency.py                       # 2,000 requests per app at 20/s
    .venv/bin/python bench/ack_latency.py --count 200 --rate 50  # quick look
    .venv/bin/python bench/ack_latency.py --noop-both            # validate the harness: ratio should be ~1.0

The Rewind side uses SQLite in a temp dir, or REWIND_BENCH_DATABASE_URL (e.g. a Postgres database) when set. Its
channel is declared an incident through the app itself before timing starts, so notes and pins really record.
"""

import argparse
import contextlib
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlencode

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # so `tests.slack_driver` imports when run as a script

from bot.localslack.standin import LocalSlack  # noqa: E402
from bot.localslack.workspace import BOT_USER_ID  # noqa: E402
from bot.runtime.http import serve_http  # noqa: E402
from tests.slack_driver import (  # noqa: E402
    JSON,
    SlackDriver,
    event_callback,
    reaction_added,
    sign,
    slash_command,
)

SECRET = "bench-signing-secret"
BOT_TOKEN = "xoxb-bench"
CHANNEL_NAME = "inc-bench-ack-latency"
USERS = ("U0ALICE", "U0BOB", "U0CAROL")
RATIO_TARGET = 1.3
P99_CEILING_MS = 300.0
WARMUP = 20

AppKind = Literal["rewind", "noop"]


# ---------------------------------------------------------------- the apps (built inside child processes)


def build_noop_app(api_url: str) -> Any:
    """A Bolt app that acknowledges everything at once: the floor the stack itself costs."""
    from slack_bolt import App
    from slack_sdk import WebClient

    app = App(signing_secret=SECRET, client=WebClient(token=BOT_TOKEN, base_url=api_url))

    @app.command("/inc")
    def on_command(ack: Callable[..., None]) -> None:
        ack()

    @app.event("reaction_added")
    def on_added() -> None:
        pass

    @app.event("reaction_removed")
    def on_removed() -> None:
        pass

    return app


def build_rewind_app(api_url: str, database_url: str) -> Any:
    from bot.app import build_app
    from bot.config import Settings
    from bot.runtime.start import prepare

    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=database_url,
        slack_api_url=api_url,
        SLACK_BOT_TOKEN=BOT_TOKEN,  # type: ignore[call-arg]
        SLACK_SIGNING_SECRET=SECRET,  # type: ignore[call-arg]
    )
    return build_app(prepare(settings), signing_secret=SECRET)


def rewind_available() -> bool:
    try:
        from bot.app import build_app  # noqa: F401
        from bot.runtime.start import prepare  # noqa: F401
    except ImportError:
        return False
    return True


def _serve_child(kind: AppKind, api_url: str, database_url: str | None, conn: Connection) -> None:
    try:
        app = build_rewind_app(api_url, database_url or "") if kind == "rewind" else build_noop_app(api_url)
        server = serve_http(app, port=0, host="127.0.0.1")
    except Exception as exc:
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        raise
    conn.send(("port", server.port))
    conn.recv()  # any message means stop
    server.stop()


@dataclass
class ServedApp:
    """An app served by bot/server.py in a child process."""

    label: str
    kind: AppKind
    process: multiprocessing.process.BaseProcess
    conn: Connection
    port: int

    @classmethod
    def start(cls, label: str, kind: AppKind, api_url: str, database_url: str | None) -> "ServedApp":
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        process = ctx.Process(target=_serve_child, args=(kind, api_url, database_url, child), name=f"bench-{label}")
        process.start()
        if not parent.poll(60):
            process.terminate()
            raise RuntimeError(f"{label}: the app did not start within 60 s")
        tag, value = parent.recv()
        if tag != "port":
            process.join(5)
            raise RuntimeError(f"{label}: the app failed to start: {value}")
        return cls(label, kind, process, parent, int(value))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.send("stop")
        self.process.join(10)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(5)


# ---------------------------------------------------------------- traffic


@dataclass(frozen=True)
class Request:
    """One slot of the schedule. The body is signed at send time so the timestamp is fresh."""

    label: str
    body: str
    content_type: str


def build_schedule(count: int, channel: str, message_ts: list[str]) -> list[Request]:
    """Alternate `/inc note` commands and 📌 reactions on distinct messages (so each pin records an entry)."""
    requests: list[Request] = []
    for i in range(count):
        user = USERS[i % len(USERS)]
        if i % 2 == 0:
            fields = slash_command(f"note bench note {i}", user=user, channel=channel, channel_name=CHANNEL_NAME)
            requests.append(Request("command", urlencode(fields), "application/x-www-form-urlencoded"))
        else:
            event = reaction_added("pushpin", channel, message_ts[i // 2], user=user, item_user=USERS[0])
            body = json.dumps(event_callback(event, event_id=f"Ev{uuid.uuid4().hex[:10].upper()}"))
            requests.append(Request("reaction", body, JSON))
    return requests


@dataclass
class Samples:
    latencies_ms: dict[str, list[float]] = field(default_factory=lambda: {"command": [], "reaction": []})
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, label: str, ms: float) -> None:
        with self.lock:
            self.latencies_ms[label].append(ms)

    def error(self, message: str) -> None:
        with self.lock:
            self.errors.append(message)

    def all(self) -> list[float]:
        return [ms for values in self.latencies_ms.values() for ms in values]


def send(driver: SlackDriver, request: Request, samples: Samples | None) -> None:
    headers = sign(SECRET, request.body, content_type=request.content_type)
    start = time.perf_counter()
    try:
        resp = driver.post(request.body, headers)
    except OSError as exc:
        if samples is not None:
            samples.error(f"{request.label}: {type(exc).__name__}: {exc}")
        return
    elapsed_ms = (time.perf_counter() - start) * 1000
    if samples is None:
        return
    if resp.status != 200:
        samples.error(f"{request.label}: HTTP {resp.status} {resp.text[:120]}")
        return
    samples.add(request.label, elapsed_ms)


def replay(
    schedule: list[Request], rate: float, pair: tuple[SlackDriver, SlackDriver], record: bool = True
) -> tuple[Samples, Samples]:
    """Open loop: slot i starts at t0 + i/rate whatever earlier slots are doing; pair order alternates per slot."""
    results = (Samples(), Samples())
    interval = 1.0 / rate
    with ThreadPoolExecutor(max_workers=32, thread_name_prefix="bench-send") as pool:
        t0 = time.perf_counter()
        for i, request in enumerate(schedule):
            delay = t0 + i * interval - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            order = (0, 1) if i % 2 == 0 else (1, 0)
            for side in order:
                pool.submit(send, pair[side], request, results[side] if record else None)
    return results


# ---------------------------------------------------------------- statistics and report


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(pct / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Verdict:
    p99_ratio: float
    ok: bool
    reasons: list[str]


def judge(candidate: Samples, baseline: Samples) -> Verdict:
    p99_c, p99_b = percentile(candidate.all(), 99), percentile(baseline.all(), 99)
    ratio = p99_c / p99_b if p99_b > 0 else float("inf")
    reasons: list[str] = []
    if ratio > RATIO_TARGET:
        reasons.append(f"p99 ratio {ratio:.2f} > {RATIO_TARGET}")
    if p99_c > P99_CEILING_MS:
        reasons.append(f"p99 {p99_c:.1f} ms > {P99_CEILING_MS:.0f} ms")
    if candidate.errors or baseline.errors:
        reasons.append(f"{len(candidate.errors)} + {len(baseline.errors)} failed requests")
    return Verdict(ratio, not reasons, reasons)


def report(
    names: tuple[str, str], results: tuple[Samples, Samples], verdict: Verdict, out: Callable[[str], None]
) -> None:
    out(f"{'app':<10} {'kind':<9} {'n':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'mean ms':>8}")
    for name, samples in zip(names, results, strict=True):
        rows = [*samples.latencies_ms.items(), ("all", samples.all())]
        for kind, values in rows:
            if not values:
                continue
            out(
                f"{name:<10} {kind:<9} {len(values):>6} {percentile(values, 50):>8.2f} {percentile(values, 99):>8.2f}"
                f" {max(values):>8.2f} {statistics.fmean(values):>8.2f}"
            )
        for message in samples.errors[:5]:
            out(f"{name:<10} error: {message}")
    p50_ratio = percentile(results[0].all(), 50) / percentile(results[1].all(), 50)
    out(f"ratio {names[0]}/{names[1]}: p50 {p50_ratio:.2f}, p99 {verdict.p99_ratio:.2f} (target <= {RATIO_TARGET})")
    out("PASS" if verdict.ok else "FAIL: " + "; ".join(verdict.reasons))


# ---------------------------------------------------------------- setup


def prepare_workspace(slack: LocalSlack, reactions: int) -> tuple[str, list[str]]:
    """An incident channel with people in it and one message per reaction to come."""
    for user in USERS:
        slack.add_user(user, user.lower().removeprefix("u0"), real_name=user.title())
    channel = slack.add_channel(CHANNEL_NAME, members=[BOT_USER_ID, *USERS])
    stamps = [slack.post_as_user(channel, USERS[0], f"10:{i % 60:02d} observation {i}") for i in range(reactions)]
    return channel, stamps


def declare_incident(app: ServedApp, channel: str) -> None:
    driver = SlackDriver(app.url, SECRET)
    fields = slash_command("declare --here Bench outage", user=USERS[0], channel=channel, channel_name=CHANNEL_NAME)
    resp = driver.send_form(fields)
    if resp.status != 200:
        raise RuntimeError(f"declaring the bench incident failed: HTTP {resp.status} {resp.text[:200]}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=2000, help="requests per app (default 2000)")
    parser.add_argument("--rate", type=float, default=20.0, help="schedule slots per second (default 20)")
    parser.add_argument("--noop-both", action="store_true", help="no-op app on both sides, to validate the harness")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    if args.count < 2 or args.rate <= 0:
        parser.error("--count must be >= 2 and --rate > 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    use_rewind = not args.noop_both and rewind_available()
    names = ("rewind", "noop") if use_rewind else ("noop-a", "noop-b")
    with tempfile.TemporaryDirectory(prefix="rewind-bench-") as tmp, LocalSlack() as slack:
        database_url = os.environ.get("REWIND_BENCH_DATABASE_URL") or f"sqlite:///{tmp}/bench.db"
        channel, stamps = prepare_workspace(slack, reactions=(args.count + WARMUP) // 2 + 1)
        kinds: tuple[AppKind, AppKind] = ("rewind", "noop") if use_rewind else ("noop", "noop")
        apps = [ServedApp.start(name, kind, slack.url, database_url) for name, kind in zip(names, kinds, strict=True)]
        try:
            if use_rewind:
                declare_incident(apps[0], channel)
            drivers = (
                SlackDriver(apps[0].url, SECRET, keep_alive=True),
                SlackDriver(apps[1].url, SECRET, keep_alive=True),
            )
            schedule = build_schedule(args.count + WARMUP, channel, stamps)
            replay(schedule[:WARMUP], rate=50, pair=drivers, record=False)
            print(
                f"ack latency: {args.count} requests per app at {args.rate:g}/s, {names[0]} vs {names[1]}", flush=True
            )
            results = replay(schedule[WARMUP:], args.rate, drivers)
        finally:
            for app in apps:
                app.stop()
        verdict = judge(*results)
        report(names, results, verdict, print)
        if args.json:
            figures = {name: {k: v for k, v in s.latencies_ms.items()} for name, s in zip(names, results, strict=True)}
            args.json.write_text(json.dumps({"p99_ratio": verdict.p99_ratio, "ok": verdict.ok, "samples": figures}))
    return 0 if verdict.ok else 1


if __name__ == "__main__":
    sys.exit(main())
