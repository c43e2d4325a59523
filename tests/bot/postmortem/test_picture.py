"""The timeline picture: valid SVG, one mark per entry, flags distinct, steps as bars, gaps shaded; PNG if possible."""

import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.postmortem.build import build_postmortem
from bot.postmortem.model import PostMortem, Span
from bot.postmortem.picture import TimeScale, render_png, render_svg
from bot.store import Store, upgrade
from tests.bot.postmortem.test_postmortem import NAMES, seed_incident

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture
def postmortem(tmp_path: Path) -> PostMortem:
    store = Store(f"sqlite:///{tmp_path / 'rewind.db'}")
    upgrade(store)
    pm = build_postmortem(store, seed_incident(store), names=NAMES)
    store.dispose()
    return pm


def classes(element: ET.Element) -> set[str]:
    return set(element.get("class", "").split())


def test_svg_is_xml_with_one_mark_per_entry(postmortem: PostMortem) -> None:
    root = ET.fromstring(render_svg(postmortem))
    assert root.tag == f"{SVG}svg"
    marks = [e for e in root.iter() if "entry" in classes(e)]
    assert len(marks) == len(postmortem.timeline) == 18
    assert sorted(m.get("data-kind") for m in marks) == sorted(r.kind for r in postmortem.timeline)
    flags = [m for m in marks if "flag" in classes(m)]
    assert len(flags) == 2 and all(f.tag == f"{SVG}polygon" for f in flags)
    assert len([m for m in marks if "approximate" in classes(m)]) == 1


def test_steps_are_bars_and_gaps_are_shaded(postmortem: PostMortem) -> None:
    root = ET.fromstring(render_svg(postmortem))
    bars = [e for e in root.iter() if "step-bar" in classes(e)]
    assert [b.get("data-position") for b in bars] == ["1", "2"]  # step 3 never started
    spans = {c for e in root.iter() for c in classes(e) if c.startswith("span-")}
    assert spans == {"span-gap", "span-damage"}
    labels = [t.text or "" for t in root.iter(f"{SVG}text")]
    assert "backup 02:00" in labels and "damage 09:12" in labels and "declared 09:58" in labels
    assert "48 min" in labels
    assert "≈ 7 h 12 min" in labels  # the backup -> damage stretch is squeezed, not drawn to scale


def test_explicit_spans_replace_recorded_ones(postmortem: PostMortem) -> None:
    span = Span(
        kind="damage", label="bad deploy", start=postmortem.header.declared_at, end=postmortem.header.declared_at
    )
    root = ET.fromstring(render_svg(postmortem, spans=[span]))
    assert [c for e in root.iter() for c in classes(e) if c.startswith("span-")] == ["span-damage"]


def test_time_scale_is_monotonic_across_the_squeeze() -> None:
    def t(h: int, m: int = 0) -> datetime:
        return datetime(2026, 3, 10, h, m, tzinfo=UTC)

    scale = TimeScale(t(1), t(12), 100, 1100, squeeze=(t(2), t(10)))
    xs = [scale.x(t(h)) for h in range(1, 13)]
    assert xs == sorted(xs) and xs[0] == 100 and xs[-1] == 1100
    assert scale.x(t(10)) - scale.x(t(2)) == pytest.approx(150, abs=1)  # 15 % of the width
    assert all(not (t(2) < tick < t(10)) for tick in scale.ticks())


def test_png_is_non_empty(postmortem: PostMortem) -> None:
    """cairosvg is a dev dependency (the `png` extra), so a renderer is always there in the tests."""
    png = render_png(render_svg(postmortem))
    assert png is not None and png.startswith(b"\x89PNG") and len(png) > 1000
