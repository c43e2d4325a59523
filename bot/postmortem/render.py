"""The post-mortem as Markdown, JSON and HTML, rendered from the model alone."""

import html
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from bot.postmortem.model import (
    NO_RESTORE_OPERATIONS,
    ActionItem,
    PostMortem,
    ProposalSummary,
    Statement,
    TimelineRow,
)
from bot.store.models import (
    EntryKind,
)


def format_duration(seconds: int | None) -> str:
    if seconds is None:
        return "ongoing"
    minutes = seconds // 60
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    parts = [f"{days} d"] if days else []
    if hours:
        parts.append(f"{hours} h")
    if minutes or not parts:
        parts.append(f"{minutes} min")
    return " ".join(parts)


def _stamp(moment: datetime | None, zone: tzinfo = UTC) -> str:
    if moment is None:
        return "—"
    local = moment.astimezone(zone)
    return local.strftime("%Y-%m-%d %H:%M ") + (local.tzname() or "")


def _needs_date(times: Iterable[datetime], zone: tzinfo) -> bool:
    """Whether the clock needs the date: only when the times span more than one day in `zone`."""
    return len({t.astimezone(zone).date() for t in times}) > 1


def _clock(row: TimelineRow, zone: tzinfo, with_date: bool) -> str:
    t = row.time.astimezone(zone)
    day = f"{t.year:04d}-{t.month:02d}-{t.day:02d} " if with_date else ""
    return f"{'~' if row.approximate else ''}{day}{t.hour:02d}:{t.minute:02d}"


def attributed(row: TimelineRow) -> str:
    """The event as the post-mortem reads it: "Yellow flag (Alice): …" or "Noticed prices missing — Alice"."""
    if row.kind == EntryKind.FLAG:
        return f"Yellow flag ({row.author}): {row.text}"
    return f"{row.text} — {row.author}"


def _figures(figures: Mapping[str, Any]) -> str:
    return ", ".join(f"{key}: {_figure(value)}" for key, value in figures.items())


def _figure(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return f"{value:,}"


def _due(item: ActionItem) -> str:
    return f" (due {item.due_at.strftime('%Y-%m-%d')})" if item.due_at else ""


def _time_columns(pm: PostMortem) -> tuple[list[str], list[tuple[tzinfo, bool]]]:
    """Column titles and (zone, with date) pairs: UTC always, the display zone when it differs."""
    times = [r.time for r in pm.timeline]
    columns = [(UTC, _needs_date(times, UTC))]
    titles = ["Time (UTC)"]
    zone = ZoneInfo(pm.header.zone)
    if pm.header.zone not in ("UTC", "Etc/UTC"):
        columns.append((zone, _needs_date(times, zone)))
        titles.append(f"Time ({pm.header.zone})")
    return titles, columns


# --- Markdown -----------------------------------------------------------------------------------------------------


def _md_cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\r\n", "\n").replace("\n", "<br>")


def _md_table(titles: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(titles) + " |", "|" + "|".join("---" for _ in titles) + "|"]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return lines


def render_markdown(pm: PostMortem) -> str:
    h = pm.header
    zone = ZoneInfo(h.zone)
    lines = [f"# Post-mortem: {h.title}", ""]
    lines += [
        f"- **Channel:** #{h.channel_name} ({h.channel_id})",
        f"- **Status:** {h.status}",
        f"- **Declared:** {_stamp(h.declared_at)}",
        f"- **Resolved:** {_stamp(h.resolved_at)}",
        f"- **Closed:** {_stamp(h.closed_at)}",
        f"- **Duration:** {format_duration(h.duration_s)}",
        f"- **Participants:** {', '.join(h.participants) or '—'}",
    ]
    if h.zone not in ("UTC", "Etc/UTC"):
        lines.append(f"- **Display time zone:** {h.zone} (declared {_stamp(h.declared_at, zone)})")

    lines += ["", "## Timeline", ""]
    titles, columns = _time_columns(pm)
    lines += _md_table(
        [*titles, "Event"], ([_clock(r, z, f) for z, f in columns] + [attributed(r)] for r in pm.timeline)
    )

    lines += ["", "## Impact", ""]
    lines += _md_statements(pm.impact, "No impact statement recorded (`/inc impact <text>`).")
    if pm.restore_figures:
        lines += ["", "Figures recorded by restore operations:", ""]
        lines += [f"- {_md_cell(f.text)} ({_figures(f.figures)})" for f in pm.restore_figures]

    lines += ["", "## Root cause", ""]
    lines += _md_statements(pm.root_cause, "No root cause recorded (`/inc cause <text>`).")

    lines += ["", "## Open questions", ""]
    lines += [f"- {q.source} ({q.author}): {_md_cell(q.text)}" for q in pm.open_questions] or ["None."]

    lines += ["", "## Action items", ""]
    if pm.action_items:
        lines += _md_table(
            ["Item", "Owner", "Status"], ([a.item + _due(a), a.owner, a.status] for a in pm.action_items)
        )
    else:
        lines.append("None recorded (`/inc action <text>`).")

    lines += ["", "## Restore operations", ""]
    if pm.restore_operations:
        lines += _md_table(
            ["#", "Target", "Operation", "Status", "Proposed by", "Approved by", "Rows"],
            (_operation_cells(op) for op in pm.restore_operations),
        )
    else:
        lines.append(NO_RESTORE_OPERATIONS)
    return "\n".join(lines) + "\n"


def _md_statements(statements: Sequence[Statement], empty: str) -> list[str]:
    return [f"- {_md_cell(s.text)} — {s.author}" for s in statements] or [empty]


def _operation_cells(op: ProposalSummary) -> list[str]:
    rows = f"{op.rows_affected:,}" if op.rows_affected is not None else "—"
    return [str(op.number), op.target, op.summary, op.status, op.proposer, ", ".join(op.approvers) or "—", rows]


# --- JSON ---------------------------------------------------------------------------------------------------------


def render_json(pm: PostMortem) -> str:
    """Every timeline row as {"time","approximate","author","kind","text"}; times are ISO 8601 UTC."""
    return pm.model_dump_json(indent=2)


# --- HTML ---------------------------------------------------------------------------------------------------------


def _html_table(titles: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(t)}</th>" for t in titles)
    body = "\n".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>"


def _html_list(items: Sequence[str], empty: str) -> str:
    if not items:
        return f"<p>{html.escape(empty)}</p>"
    return "<ul>\n" + "\n".join(f"<li>{html.escape(i)}</li>" for i in items) + "\n</ul>"


def render_html(pm: PostMortem) -> str:
    h = pm.header
    titles, columns = _time_columns(pm)
    header_rows = [
        ("Channel", f"#{h.channel_name} ({h.channel_id})"),
        ("Status", h.status),
        ("Declared", _stamp(h.declared_at)),
        ("Resolved", _stamp(h.resolved_at)),
        ("Closed", _stamp(h.closed_at)),
        ("Duration", format_duration(h.duration_s)),
        ("Participants", ", ".join(h.participants) or "—"),
    ]
    figures = [f"{f.text} ({_figures(f.figures)})" for f in pm.restore_figures]
    parts = [
        "<!DOCTYPE html>",
        '<html><head><meta charset="utf-8">',
        f"<title>Post-mortem: {html.escape(h.title)}</title>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top}</style>",
        "</head><body>",
        f"<h1>Post-mortem: {html.escape(h.title)}</h1>",
        "<dl>" + "".join(f"<dt>{k}</dt><dd>{html.escape(v)}</dd>" for k, v in header_rows) + "</dl>",
        "<h2>Timeline</h2>",
        _html_table([*titles, "Event"], ([_clock(r, z, f) for z, f in columns] + [attributed(r)] for r in pm.timeline)),
        "<h2>Impact</h2>",
        _html_list([f"{s.text} — {s.author}" for s in pm.impact], "No impact statement recorded."),
    ]
    if figures:
        parts += ["<p>Figures recorded by restore operations:</p>", _html_list(figures, "")]
    parts += [
        "<h2>Root cause</h2>",
        _html_list([f"{s.text} — {s.author}" for s in pm.root_cause], "No root cause recorded."),
        "<h2>Open questions</h2>",
        _html_list([f"{q.source} ({q.author}): {q.text}" for q in pm.open_questions], "None."),
        "<h2>Action items</h2>",
        _html_table(["Item", "Owner", "Status"], ([a.item + _due(a), a.owner, a.status] for a in pm.action_items))
        if pm.action_items
        else "<p>None recorded.</p>",
        "<h2>Restore operations</h2>",
        _html_table(
            ["#", "Target", "Operation", "Status", "Proposed by", "Approved by", "Rows"],
            (_operation_cells(op) for op in pm.restore_operations),
        )
        if pm.restore_operations
        else f"<p>{html.escape(NO_RESTORE_OPERATIONS)}</p>",
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


RENDERERS = {"md": render_markdown, "json": render_json, "html": render_html}
