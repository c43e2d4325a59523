"""The incident's picture: a hand-written SVG timeline (PNG when a renderer is installed).

Reading top to bottom: shaded spans (after the backup, the damage), lanes of entries (one mark per entry, yellow flags
as diamonds, approximate times hollow), the run of show as bars from started to done, and a UTC time axis. Vertical
lines mark the backup, the declaration (when it was noticed) and the resolution.
"""

import shutil
import subprocess
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from html import escape

from bot.postmortem.model import PostMortem, Span, StepSummary, TimelineRow
from bot.postmortem.render import format_duration

WIDTH = 1200
LABEL_WIDTH = 230
RIGHT_MARGIN = 40
TOP = 84  # lanes start here; marker labels sit in the band above
LANE_HEIGHT = 30
STEP_HEIGHT = 24
AXIS_HEIGHT = 70
TITLE_CHARS = 34

# Lanes group entry kinds so a reader sees the conversation, the flags, the plan and the repair separately.
LANES: list[tuple[str, tuple[str, ...]]] = [
    ("Status", ("status",)),
    ("Notes", ("note", "impact", "cause", "question", "assignment", "action")),
    ("Yellow flags", ("flag",)),
    ("Run of show", ("step",)),
    ("Restore", ("restore", "proposal", "approval", "execution")),
]
COLOURS = {
    "status": "#1f4e79",
    "note": "#2b6cb0",
    "impact": "#c53030",
    "cause": "#9b2c2c",
    "question": "#6b46c1",
    "assignment": "#2f855a",
    "action": "#2f855a",
    "flag": "#d69e2e",
    "step": "#2c7a7b",
    "restore": "#4a5568",
    "proposal": "#805ad5",
    "approval": "#38a169",
    "execution": "#dd6b20",
}
SPAN_STYLE = {"gap": ("#a0aec0", "0.35"), "damage": ("#e53e3e", "0.25")}
TICK_STEPS_S = [60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800]
MIN_TICK_PX = 70
SQUEEZE_SHARE = 0.15


class TimeScale:
    """Maps UTC datetimes to x pixels. A long stretch (`squeeze`, e.g. backup -> damage) gets a fixed share of the
    width so that hours of nothing do not crush the incident itself; the axis shows a break there."""

    def __init__(
        self, start: datetime, end: datetime, x0: float, x1: float, squeeze: tuple[datetime, datetime] | None = None
    ) -> None:
        self.start, self.end, self.x0, self.x1 = start, end, x0, x1
        self.squeezed = squeeze if squeeze and _worth_squeezing(start, end, squeeze) else None
        self._knots = self._make_knots()

    def _make_knots(self) -> list[tuple[float, float]]:
        """(epoch seconds, x) pairs; x is linear between consecutive knots."""
        t0, t1 = self.start.timestamp(), self.end.timestamp()
        if self.squeezed is None:
            return [(t0, self.x0), (max(t1, t0 + 1), self.x1)]
        s0, s1 = (t.timestamp() for t in self.squeezed)
        width = self.x1 - self.x0
        squeezed_px = width * SQUEEZE_SHARE
        per_s = (width - squeezed_px) / max((s0 - t0) + (t1 - s1), 1.0)
        xa = self.x0 + (s0 - t0) * per_s
        return [(t0, self.x0), (s0, xa), (s1, xa + squeezed_px), (t1, self.x1)]

    def x(self, moment: datetime) -> float:
        t = moment.timestamp()
        knots = self._knots
        i = next((k for k in range(1, len(knots) - 1) if t < knots[k][0]), len(knots) - 1)
        (ta, xa), (tb, xb) = knots[i - 1], knots[i]
        return round(xa + (t - ta) * (xb - xa) / max(tb - ta, 1e-9), 1)

    def ticks(self) -> list[datetime]:
        """Round times at least MIN_TICK_PX apart, aligned to UTC midnight, none inside the squeezed stretch."""
        (ta, xa), (tb, xb) = self._knots[-2], self._knots[-1]  # the incident itself: never squeezed
        per_s = (xb - xa) / max(tb - ta, 1.0)
        step = next((s for s in TICK_STEPS_S if s * per_s >= MIN_TICK_PX), TICK_STEPS_S[-1])
        first = int(self.start.timestamp()) // step * step + step
        ticks = [datetime.fromtimestamp(t, UTC) for t in range(first, int(self.end.timestamp()) + 1, step)]
        if self.squeezed is None:
            return ticks
        s0, s1 = self.squeezed
        return [t for t in ticks if not (s0 - timedelta(seconds=step / 2) < t < s1 + timedelta(seconds=step / 2))]


def _worth_squeezing(start: datetime, end: datetime, squeeze: tuple[datetime, datetime]) -> bool:
    squeezed = (squeeze[1] - squeeze[0]).total_seconds()
    rest = (end - start).total_seconds() - squeezed
    return start <= squeeze[0] < squeeze[1] <= end and squeezed > 2 * rest


def render_svg(pm: PostMortem, *, spans: Sequence[Span] | None = None, width: int = WIDTH) -> str:
    """The timeline chart. `spans` overrides the spans the restore entries recorded (pm.spans)."""
    spans = list(pm.spans if spans is None else spans)
    end_fallback = _end_of_incident(pm)
    gaps = [(s.start, s.end) for s in spans if s.kind == "gap"]
    squeeze = max(gaps, key=lambda g: g[1] - g[0]) if gaps else None
    scale = TimeScale(*_time_range(pm, spans, end_fallback, squeeze), LABEL_WIDTH, width - RIGHT_MARGIN, squeeze)
    steps_top = TOP + LANE_HEIGHT * len(LANES) + 10
    axis_y = steps_top + STEP_HEIGHT * len(pm.steps) + 14
    height = axis_y + AXIS_HEIGHT

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="DejaVu Sans, Arial, sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
        f'<text x="16" y="26" font-size="17" font-weight="bold">{escape(pm.header.title)}</text>',
        f'<text x="16" y="45" fill="#4a5568">#{escape(pm.header.channel_name)} · timeline in UTC · '
        f"{len(pm.timeline):,} entries · duration {format_duration(pm.header.duration_s)}</text>",
    ]
    parts += _spans(spans, scale, TOP - 30, axis_y)
    parts += _lanes(pm.timeline, scale, width)
    parts += _steps(pm.steps, scale, steps_top, end_fallback)
    parts += _markers(pm, spans, scale, TOP - 30, axis_y)
    parts += _axis(scale, axis_y)
    parts += _legend(axis_y + 50)
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _end_of_incident(pm: PostMortem) -> datetime:
    """Where an unfinished step's bar stops: the resolution, else the last thing recorded."""
    h = pm.header
    candidates = [h.resolved_at, h.closed_at, h.declared_at, *(r.time for r in pm.timeline[-1:])]
    return max(c for c in candidates if c is not None)


def _time_range(
    pm: PostMortem, spans: Sequence[Span], end_fallback: datetime, squeeze: tuple[datetime, datetime] | None
) -> tuple[datetime, datetime]:
    h = pm.header
    times = [h.declared_at, end_fallback, *(s.start for s in spans), *(s.end for s in spans)]
    if pm.timeline:  # rows are in time order
        times += [pm.timeline[0].time, pm.timeline[-1].time]
    times += [t for step in pm.steps for t in (step.started_at, step.done_at) if t is not None]
    start, end = min(times), max(times)
    shown = (end - start) - ((squeeze[1] - squeeze[0]) if squeeze else timedelta(0))
    pad = max(shown * 0.03, timedelta(minutes=2))
    return start - pad, end + pad


def _spans(spans: Sequence[Span], scale: TimeScale, top: float, bottom: float) -> list[str]:
    out = []
    for span in spans:
        fill, opacity = SPAN_STYLE.get(span.kind, ("#a0aec0", "0.3"))
        x0, x1 = scale.x(span.start), scale.x(span.end)
        out.append(
            f'<rect class="span span-{escape(span.kind)}" x="{x0}" y="{top}" width="{max(x1 - x0, 2)}" '
            f'height="{bottom - top}" fill="{fill}" fill-opacity="{opacity}">'
            f"<title>{escape(span.label)}: {_hhmm(span.start)}–{_hhmm(span.end)} UTC</title></rect>"
        )
    return out


def _lanes(rows: Sequence[TimelineRow], scale: TimeScale, width: int) -> list[str]:
    lane_of = {kind: i for i, (_, kinds) in enumerate(LANES) for kind in kinds}
    out = []
    for i, (label, _) in enumerate(LANES):
        y = TOP + i * LANE_HEIGHT + LANE_HEIGHT / 2
        out.append(f'<text x="16" y="{y + 4}" fill="#2d3748">{label}</text>')
        out.append(f'<line x1="{LABEL_WIDTH}" y1="{y}" x2="{width - RIGHT_MARGIN}" y2="{y}" stroke="#e2e8f0"/>')
    for row in rows:
        y = TOP + lane_of.get(row.kind, 1) * LANE_HEIGHT + LANE_HEIGHT / 2
        out.append(_mark(row, scale.x(row.time), y))
    return out


def _mark(row: TimelineRow, x: float, y: float) -> str:
    colour = COLOURS.get(row.kind, "#2b6cb0")
    fill = "#ffffff" if row.approximate else colour
    tip = f"<title>{'~' if row.approximate else ''}{_hhmm(row.time)} {escape(_short(row.text, 80))}</title>"
    common = f'data-kind="{escape(row.kind)}" fill="{fill}" stroke="{colour}" stroke-width="1.5" fill-opacity="0.85"'
    css = "entry flag" if row.kind == "flag" else "entry"
    if row.approximate:
        css += " approximate"
    if row.kind == "flag":
        points = f"{x},{y - 8} {x + 7},{y} {x},{y + 8} {x - 7},{y}"
        return f'<polygon class="{css}" points="{points}" {common}>{tip}</polygon>'
    return f'<circle class="{css}" cx="{x}" cy="{y}" r="4.5" {common}>{tip}</circle>'


def _steps(steps: Sequence[StepSummary], scale: TimeScale, top: float, end_fallback: datetime) -> list[str]:
    out = []
    for i, step in enumerate(steps):
        y = top + i * STEP_HEIGHT
        owner = f" ({step.owner})" if step.owner else ""
        label = _short(f"{step.position}. {step.title}{owner}", TITLE_CHARS)
        out.append(f'<text x="16" y="{y + 16}" fill="#2d3748">{escape(label)}</text>')
        if step.started_at is None:
            out.append(f'<text x="{LABEL_WIDTH + 4}" y="{y + 16}" fill="#a0aec0">{escape(step.status)}</text>')
            continue
        done = step.done_at or end_fallback
        x0, x1 = scale.x(step.started_at), scale.x(done)
        dash = "" if step.done_at else ' stroke-dasharray="4 3"'
        took = format_duration(int((done - step.started_at).total_seconds()))
        took = took if step.done_at else f"{took}, {step.status}"
        out.append(
            f'<rect class="step-bar" data-position="{step.position}" x="{x0}" y="{y + 5}" width="{max(x1 - x0, 2)}" '
            f'height="{STEP_HEIGHT - 10}" rx="3" fill="#81e6d9" stroke="#2c7a7b"{dash}>'
            f"<title>{escape(step.title)}: {took}</title></rect>"
        )
        out.append(_label(x1 + 6, y + 16, took, scale.x1, colour="#285e61", before=x0 - 6))
    return out


def _markers(pm: PostMortem, spans: Sequence[Span], scale: TimeScale, top: float, bottom: float) -> list[str]:
    """Vertical lines for the moments a reader looks for first."""
    h = pm.header
    moments = [("declared", h.declared_at, "#1f4e79"), ("resolved", h.resolved_at, "#2f855a")]
    moments += [("backup", s.start, "#4a5568") for s in spans if s.kind == "gap"]
    moments += [("damage", s.start, "#c53030") for s in spans if s.kind == "damage"]
    out = []
    present = sorted(((m, label, colour) for label, m, colour in moments if m is not None), key=lambda m: m[0])
    for i, (moment, label, colour) in enumerate(present):
        x = scale.x(moment)
        y = top + 10 + 12 * (i % 2)  # alternate rows so neighbouring labels do not overlap
        out.append(
            f'<line class="marker" x1="{x}" y1="{top}" x2="{x}" y2="{bottom}" stroke="{colour}" '
            f'stroke-width="1.5" stroke-dasharray="6 3"/>'
        )
        out.append(_label(x + 3, y, f"{label} {_hhmm(moment)}", scale.x1, colour=colour, before=x - 3))
    return out


def _label(x: float, y: float, text: str, right_edge: float, *, colour: str, before: float) -> str:
    """Small text starting at x, or ending at `before` when it would run off the right edge."""
    anchor = ""
    if x + len(text) * 6.5 > right_edge + RIGHT_MARGIN - 4:
        x, anchor = before, ' text-anchor="end"'
    return f'<text x="{x}" y="{y}"{anchor} fill="{colour}" font-size="11">{escape(text)}</text>'


def _axis(scale: TimeScale, y: float) -> list[str]:
    out = [f'<line x1="{scale.x0}" y1="{y}" x2="{scale.x1}" y2="{y}" stroke="#2d3748"/>']
    if scale.squeezed is not None:
        out += _axis_break(scale, y)
    previous_day = None
    for tick in scale.ticks():
        x = scale.x(tick)
        out.append(f'<line x1="{x}" y1="{y}" x2="{x}" y2="{y + 5}" stroke="#2d3748"/>')
        out.append(f'<text x="{x}" y="{y + 18}" text-anchor="middle" fill="#2d3748">{_hhmm(tick)}</text>')
        if tick.date() != previous_day:
            out.append(
                f'<text x="{x}" y="{y + 32}" text-anchor="middle" fill="#718096" font-size="11">'
                f"{tick.strftime('%Y-%m-%d')}</text>"
            )
            previous_day = tick.date()
    out.append(f'<text x="16" y="{y + 18}" fill="#718096">Time (UTC)</text>')
    return out


def _axis_break(scale: TimeScale, y: float) -> list[str]:
    """Two slashes across the axis where time is squeezed, and how much time that is."""
    s0, s1 = scale.squeezed  # type: ignore[misc]
    mid = (scale.x(s0) + scale.x(s1)) / 2
    hidden = format_duration(int((s1 - s0).total_seconds()))
    return [
        f'<rect x="{mid - 7}" y="{y - 6}" width="14" height="12" fill="#ffffff"/>',
        f'<path d="M{mid - 9},{y + 6} l6,-12 M{mid + 3},{y + 6} l6,-12" stroke="#2d3748" stroke-width="1.5"/>',
        f'<text x="{mid}" y="{y + 18}" text-anchor="middle" fill="#718096" font-size="11">≈ {hidden}</text>',
    ]


def _legend(y: float) -> list[str]:
    return [
        f'<circle cx="22" cy="{y - 4}" r="4.5" fill="#2b6cb0"/><text x="32" y="{y}">entry</text>',
        f'<circle cx="92" cy="{y - 4}" r="4.5" fill="#fff" stroke="#2b6cb0"/><text x="102" y="{y}">approximate</text>',
        f'<polygon points="206,{y - 12} 213,{y - 4} 206,{y + 4} 199,{y - 4}" fill="#d69e2e"/>'
        f'<text x="220" y="{y}">yellow flag</text>',
        f'<rect x="310" y="{y - 10}" width="24" height="12" fill="#81e6d9" stroke="#2c7a7b"/>'
        f'<text x="340" y="{y}">step (started → done)</text>',
        f'<rect x="490" y="{y - 10}" width="24" height="12" fill="#a0aec0" fill-opacity="0.35"/>'
        f'<text x="520" y="{y}">after the backup (not in it)</text>',
        f'<rect x="710" y="{y - 10}" width="24" height="12" fill="#e53e3e" fill-opacity="0.25"/>'
        f'<text x="740" y="{y}">damage</text>',
    ]


def _hhmm(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%H:%M")


def _short(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render_png(svg: str, *, timeout_s: float = 30) -> bytes | None:
    """PNG bytes from cairosvg or rsvg-convert, whichever is installed; None when neither is."""
    try:
        import cairosvg  # type: ignore[import-not-found]  # optional
    except (ImportError, OSError):  # not installed, or installed without the system's libcairo
        cairosvg = None
    if cairosvg is not None:
        return bytes(cairosvg.svg2png(bytestring=svg.encode()))
    binary = shutil.which("rsvg-convert")
    if binary is None:
        return None
    done = subprocess.run(
        [binary, "--format", "png"], input=svg.encode(), capture_output=True, timeout=timeout_s, check=True
    )
    return done.stdout or None


__all__ = ["TimeScale", "render_png", "render_svg"]
