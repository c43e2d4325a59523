"""Post-mortem of a 10,000-entry incident: Markdown + JSON (target < 1 s), and with the picture (target < 3 s).

The baseline, measured in the same run on the same store, is the bare SELECT of the incident's entry rows: the least
any post-mortem must do. The ratio says how much the build and the renderers add on top of reading the data.

    .venv/bin/python bench/postmortem.py                  # 10,000 entries, best of 5
    .venv/bin/python bench/postmortem.py --entries 50000  # stress
    REWIND_BENCH_DATABASE_URL=postgresql://... .venv/bin/python bench/postmortem.py   # on Postgres (an empty DB)
"""

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from sqlalchemy import insert, select  # noqa: E402

from bot.postmortem.build import build_postmortem  # noqa: E402
from bot.postmortem.picture import render_png, render_svg  # noqa: E402
from bot.postmortem.render import render_json, render_markdown  # noqa: E402
from bot.store import Store, upgrade  # noqa: E402
from bot.store.models import Entry, EntryReactor, Flag, Incident, Step, Task  # noqa: E402

START = datetime(2026, 3, 10, 8, 0, tzinfo=UTC)
KINDS = ["note"] * 70 + ["flag"] * 3 + ["step"] * 8 + ["assignment"] * 4 + ["status"] * 1 + ["restore"] * 4
KINDS += ["proposal"] * 3 + ["approval"] * 3 + ["execution"] * 2 + ["impact", "cause", "question"]


def seed(store: Store, count: int, rng: random.Random) -> int:
    """One incident of `count` entries over ten hours, with flags, steps, tasks and reactors, inserted in bulk."""
    with store.transaction() as s:
        incident = Incident(
            channel_id="CBENCH",
            channel_name="inc-bench",
            title="Bench: 10k entries",
            declared_by="U0",
            declared_at=START,
            resolved_at=START + timedelta(hours=10),
        )
        s.add(incident)
        s.flush()
        rows = [_entry(incident.id, i, count, rng) for i in range(count)]
        s.execute(insert(Entry), rows)
        ids = s.scalars(select(Entry.id).where(Entry.incident_id == incident.id).order_by(Entry.id)).all()
        flag_ids = [i for i, row in zip(ids, rows, strict=True) if row["kind"] == "flag"]
        s.execute(
            insert(Flag),
            [
                {"incident_id": incident.id, "number": n, "entry_id": e, "status": rng.choice(["open", "resolved"])}
                for n, e in enumerate(flag_ids, 1)
            ],
        )
        s.execute(
            insert(EntryReactor),
            [{"entry_id": e, "user_id": f"U{rng.randrange(80)}"} for e in rng.sample(list(ids), count // 10)],
        )
        s.execute(insert(Step), [_step(incident.id, n, rng) for n in range(1, 21)])
        s.execute(insert(Task), [_task(incident.id, n, rng) for n in range(1, 41)])
        return incident.id


def _entry(incident_id: int, i: int, count: int, rng: random.Random) -> dict[str, Any]:
    kind = rng.choice(KINDS)
    data: dict[str, Any] | None = None
    if kind == "restore":
        data = {
            "backup_time": "2026-03-10T02:00:00+00:00",
            "tables": rng.randrange(1, 9),
            "rows": rng.randrange(100_000),
        }
    elif kind in ("proposal", "execution"):
        data = {"rows_affected": rng.randrange(1, 5000)}
    user = rng.randrange(50)
    return {
        "incident_id": incident_id,
        "kind": kind,
        "text": f"Entry {i}: "
        + " ".join(rng.choice(["rows", "price", "backup", "replica", "checked"]) for _ in range(8)),
        "author_id": f"U{user}",
        "author_name": f"Person {user}",
        "occurred_at": START + timedelta(seconds=36_000 * i / count),
        "approximate": rng.random() < 0.05,
        "recorded_at": START + timedelta(seconds=36_000 * i / count + 5),
        "deleted_at": START if rng.random() < 0.01 else None,
        "data": data,
    }


def _step(incident_id: int, n: int, rng: random.Random) -> dict[str, Any]:
    started = START + timedelta(minutes=25 * n)
    return {
        "incident_id": incident_id,
        "position": n,
        "title": f"Step {n}",
        "owner_id": f"U{rng.randrange(50)}",
        "status": "done",
        "started_at": started,
        "done_at": started + timedelta(minutes=rng.randrange(5, 90)),
    }


def _task(incident_id: int, n: int, rng: random.Random) -> dict[str, Any]:
    return {
        "incident_id": incident_id,
        "kind": "action" if n % 2 else "assignment",
        "number": n,
        "owner_id": f"U{rng.randrange(50)}",
        "text": f"Follow-up {n}",
        "status": rng.choice(["open", "done"]),
        "created_by": "U0",
    }


class Timing:
    """Median wall and CPU seconds over the runs: CPU time shows the cost when other work shares the machine."""

    def __init__(self, walls: list[float], cpus: list[float]) -> None:
        self.wall, self.cpu = statistics.median(walls), statistics.median(cpus)

    def __add__(self, other: "Timing") -> "Timing":
        return Timing([self.wall + other.wall], [self.cpu + other.cpu])

    def __str__(self) -> str:
        return f"{self.wall * 1000:8.1f} ms wall {self.cpu * 1000:8.1f} ms CPU"


def timed(fn: Callable[[], Any], repeat: int) -> tuple[Timing, Any]:
    walls, cpus, result = [], [], None
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        result = fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return Timing(walls, cpus), result


def baseline_select(store: Store, incident_id: int) -> int:
    with store.transaction() as s:
        return len(s.execute(select(Entry.__table__).where(Entry.incident_id == incident_id)).all())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        url = os.environ.get("REWIND_BENCH_DATABASE_URL") or f"sqlite:///{Path(tmp) / 'bench.db'}"
        store = Store(url)
        upgrade(store)
        incident_id = seed(store, args.entries, random.Random(args.seed))
        names = {f"U{i}": f"Person {i}" for i in range(80)}

        base, rows = timed(lambda: baseline_select(store, incident_id), args.repeat)
        build, pm = timed(lambda: build_postmortem(store, incident_id, names=names, zone="Europe/Paris"), args.repeat)
        md, markdown = timed(lambda: render_markdown(pm), args.repeat)
        js, document = timed(lambda: render_json(pm), args.repeat)
        svg_t, svg = timed(lambda: render_svg(pm), args.repeat)
        png_t, png = timed(lambda: render_png(svg), 1)
        store.dispose()

    text_total = build + md + js
    all_total = text_total + svg_t
    load = os.getloadavg()[0]
    print(
        f"store: {url.split(':')[0]}, {rows:,} entry rows, {len(pm.timeline):,} timeline rows, median of {args.repeat}"
    )
    print(f"machine: {os.cpu_count()} CPUs, load average {load:.1f} (wall time suffers when it exceeds the CPUs)")
    print(f"  baseline SELECT of the entry rows  {base}")
    print(f"  build_postmortem (all queries)     {build}")
    print(f"  render_markdown                    {md}   {len(markdown):,} chars")
    print(f"  render_json                        {js}   {len(document):,} chars")
    print(f"  render_svg                         {svg_t}   {len(svg):,} chars")
    if png is None:
        print("  render_png                         skipped (no cairosvg or rsvg-convert)")
    else:
        print(f"  render_png (not in the targets)    {png_t}   {len(png):,} bytes")
    print(f"Markdown + JSON:  {text_total}  (target < 1000 ms) {_verdict(text_total, 1)}")
    print(f"with the picture: {all_total}  (target < 3000 ms) {_verdict(all_total, 3)}")
    print(
        f"ratio vs baseline SELECT (wall): Markdown + JSON {text_total.wall / base.wall:.1f}x, "
        f"with the picture {all_total.wall / base.wall:.1f}x"
    )
    return 0 if text_total.wall < 1 and all_total.wall < 3 else 1


def _verdict(timing: Timing, limit_s: float) -> str:
    if timing.wall < limit_s:
        return "OK"
    return "MISSED (CPU time within target: the machine is busy)" if timing.cpu < limit_s else "MISSED"


if __name__ == "__main__":
    sys.exit(main())
