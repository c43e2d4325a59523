"""The post-mortem, written from the store alone: header, timeline, impact, root cause, questions, action items.

`build_postmortem()` reads an incident with one query per table and returns a `PostMortem` (`model`) of plain
values; the renderers (`render`) and the picture (`picture`) read that model alone.

Entry text is Slack's: `<@U123>` mentions become "@Name", `<#C1|chan>` "#chan", `<url|label>` "label", and the
&lt; &gt; &amp; escapes are undone, so every format reads like the channel did.

Entry `data` keys this module understands (all optional):
- proposal / execution: `rows_affected` (int) or `row_counts` ({table: int});
- restore: any figures, listed under Impact; `backup_time`, `damage_start`, `damage_end` (ISO 8601) become the
  picture's shaded spans.
"""

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, tzinfo
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.errors import NotFoundError
from bot.grammar.slacktext import unescape
from bot.postmortem.model import (
    COUNTED_KINDS,
    KIND_LABELS,
    TIMELINE_ROWS,
    ActionItem,
    Header,
    PostMortem,
    ProposalSummary,
    Question,
    Resolve,
    RestoreFigures,
    Span,
    Statement,
    StepSummary,
)
from bot.store.models import (
    Entry,
    EntryKind,
    EntryReactor,
    Flag,
    FlagStatus,
    Incident,
    Proposal,
    ProposalApproval,
    Step,
    Task,
    TaskKind,
    TaskStatus,
)
from bot.store.session import Store


def build_postmortem(
    store: Store,
    incident_id: int,
    *,
    names: Mapping[str, str],
    zone: tzinfo | str = UTC,
    proposals: Sequence[ProposalSummary] = (),
) -> PostMortem:
    """The post-mortem of one incident. `names` maps user ids to display names; unknown ids fall back to the
    author_name an entry carried, then to the id. `proposals` fills the Restore operations section."""
    with store.transaction() as session:
        incident = session.get(Incident, incident_id)
        if incident is None:
            raise NotFoundError(f"No incident #{incident_id}. `rewind postmortem --channel NAME` finds one by channel.")
        entries = _entries(session, incident_id)
        reactors = _reactors(session, incident_id)
        flags = session.execute(
            select(Flag.number, Flag.entry_id, Flag.status).where(Flag.incident_id == incident_id).order_by(Flag.number)
        ).all()
        steps = session.scalars(select(Step).where(Step.incident_id == incident_id).order_by(Step.position)).all()
        tasks = session.scalars(
            select(Task).where(Task.incident_id == incident_id).order_by(Task.kind, Task.number)
        ).all()
        if not proposals and any(e.kind == EntryKind.PROPOSAL and "sql_sha256" in (e.data or {}) for e in entries):
            proposals = _stored_proposals(session, incident_id)  # the approval flow's entries carry the SQL hash
    resolve = _name_resolver(names, entries)
    live = [e for e in entries if e.deleted_at is None]
    by_kind: dict[str, list[Any]] = defaultdict(list)
    for e in live:
        by_kind[e.kind].append(e)
    return PostMortem(
        header=_header(incident, live, reactors, resolve, _zone_name(zone)),
        timeline=TIMELINE_ROWS.validate_python([_row(e, resolve) for e in live]),
        impact=[_statement(e, resolve) for e in by_kind[EntryKind.IMPACT]],
        root_cause=[_statement(e, resolve) for e in by_kind[EntryKind.CAUSE]],
        restore_figures=[
            RestoreFigures(time=e.occurred_at, text=plain_text(e.text, resolve), figures=e.data)
            for e in by_kind[EntryKind.RESTORE]
            if e.data
        ],
        open_questions=_questions(flags, by_kind[EntryKind.FLAG], by_kind[EntryKind.QUESTION], resolve),
        action_items=_action_items(tasks, resolve),
        steps=[
            StepSummary(
                position=s.position,
                title=plain_text(s.title, resolve),
                owner=resolve(s.owner_id) if s.owner_id else None,
                status=s.status,
                started_at=s.started_at,
                done_at=s.done_at,
            )
            for s in steps
        ],
        spans=spans_from_entries(by_kind[EntryKind.RESTORE]),
        restore_operations=[
            op.model_copy(update={"proposer": resolve(op.proposer), "approvers": [resolve(a) for a in op.approvers]})
            for op in proposals
        ],
    )


def _stored_proposals(session: Session, incident_id: int) -> list[ProposalSummary]:
    """The approval flow's proposals: outcome, approvers on the proposal's hash, and row counts."""
    proposals = session.scalars(
        select(Proposal).where(Proposal.incident_id == incident_id).order_by(Proposal.number)
    ).all()
    approvers: dict[int, list[str]] = defaultdict(list)
    rows = session.execute(
        select(ProposalApproval.proposal_id, ProposalApproval.user_id, ProposalApproval.sql_sha256)
        .join(Proposal, Proposal.id == ProposalApproval.proposal_id)
        .where(Proposal.incident_id == incident_id, ProposalApproval.sql_sha256 == Proposal.sql_sha256)
        .order_by(ProposalApproval.approved_at, ProposalApproval.user_id)
    )
    for proposal_id, user_id, _hash in rows:
        approvers[proposal_id].append(user_id)
    summaries = []
    for p in proposals:
        result = p.result or {}
        ran = p.status in ("executed", "failed") and "counts" in result
        summaries.append(
            ProposalSummary(
                number=p.number,
                target=p.target,
                summary=p.summary,
                status=p.status,
                proposer=p.proposer_id,
                approvers=[u for u in approvers[p.id] if u != p.proposer_id],
                sql_sha256=p.sql_sha256,
                rows_affected=result.get("rows_affected") if ran else None,
                duration_s=result.get("seconds") if ran else None,
                executed_at=p.finished_at if p.status == "executed" else None,
            )
        )
    return summaries


def find_incident_id(store: Store, channel: str) -> int:
    """An incident by channel name (with or without '#') or channel id."""
    name = channel.lstrip("#")
    with store.transaction() as session:
        found = session.scalars(
            select(Incident.id).where((Incident.channel_name == name) | (Incident.channel_id == name))
        ).first()
    if found is None:
        raise NotFoundError(f"No incident in channel {channel!r}. Check the name, or use --incident ID.")
    return found


class EntryRow(NamedTuple):
    """The entry columns a post-mortem reads. A named tuple, not an ORM object nor a Row: attribute access on it is
    a C-level index, and the build reads about ten attributes of each of 10,000 entries."""

    id: int
    kind: str
    text: str
    author_id: str
    author_name: str | None
    occurred_at: datetime
    approximate: bool
    deleted_at: datetime | None
    data: dict[str, Any] | None


def _entries(session: Session, incident_id: int) -> list[EntryRow]:
    columns = [getattr(Entry, name) for name in EntryRow._fields]
    query = select(*columns).where(Entry.incident_id == incident_id).order_by(Entry.occurred_at, Entry.id)
    return [EntryRow._make(row) for row in session.execute(query)]


def _reactors(session: Session, incident_id: int) -> list[str]:
    return list(
        session.scalars(
            select(EntryReactor.user_id)
            .join(Entry, Entry.id == EntryReactor.entry_id)
            .where(Entry.incident_id == incident_id, Entry.deleted_at.is_(None))
            .distinct()
        ).all()
    )


def _name_resolver(names: Mapping[str, str], entries: Iterable[Any]) -> Resolve:
    """user id -> display name: the directory first, then a name an entry recorded, then the id itself."""
    recorded = {e.author_id: e.author_name for e in entries if e.author_name}

    def resolve(user_id: str) -> str:
        return names.get(user_id) or recorded.get(user_id) or user_id

    return resolve


def _zone_name(zone: tzinfo | str) -> str:
    if isinstance(zone, str):
        return ZoneInfo(zone).key
    return getattr(zone, "key", None) or str(zone)


def _header(incident: Incident, live: list[Any], reactors: list[str], resolve: Resolve, zone: str) -> Header:
    ids = {incident.declared_by, *(e.author_id for e in live), *reactors}
    end = incident.resolved_at or incident.closed_at
    return Header(
        title=unescape(incident.title),  # stores written before titles were kept unescaped
        channel_id=incident.channel_id,
        channel_name=incident.channel_name,
        status=incident.status,
        declared_at=incident.declared_at,
        resolved_at=incident.resolved_at,
        closed_at=incident.closed_at,
        duration_s=int((end - incident.declared_at).total_seconds()) if end else None,
        participants=sorted({resolve(i) for i in ids}, key=str.casefold),
        zone=zone,
    )


def _row(entry: Any, resolve: Resolve) -> dict[str, Any]:
    # Dicts validated as one list (TIMELINE_ROWS) cost a third of building 10,000 models one by one.
    return {
        "time": entry.occurred_at,
        "approximate": entry.approximate,
        "author": resolve(entry.author_id),
        "kind": entry.kind,
        "text": _event_text(entry, resolve),
    }


def _event_text(entry: Any, resolve: Resolve) -> str:
    text, kind, data = plain_text(entry.text, resolve), entry.kind, entry.data
    label = KIND_LABELS.get(kind)
    if label:
        text = f"{label}: {text}"
    if data and kind in COUNTED_KINDS:
        rows = _row_count(data)
        if rows is not None:
            text += f" ({rows:,} row{'s' if rows != 1 else ''})"
    return text


# Only what Slack itself writes inside <…>: a user, a channel, a special mention, or a URL with a scheme. Anything
# else (text typed in the shell, say) is left alone.
_SLACK_MARKUP = re.compile(r"<(@[UW][A-Z0-9]+|#C[A-Z0-9]+|![a-z^A-Z0-9]+|[a-z][a-z0-9+.\-]*:[^>|\s]+)(?:\|([^>]*))?>")


def plain_text(text: str, resolve: Resolve) -> str:
    """Slack's message markup as a reader sees it in the channel."""
    if "<" not in text and "&" not in text:
        return text

    def replace(match: re.Match[str]) -> str:
        target, label = match.groups()
        if target[0] == "@":
            return "@" + resolve(target[1:])
        if target[0] == "#":
            return "#" + (label or target[1:])
        if target[0] == "!":
            return "@" + (label or target[1:].split("^")[0])  # <!here>, <!subteam^S1|team>
        return f"{label} ({target})" if label and label != target else target

    text = _SLACK_MARKUP.sub(replace, text)
    return unescape(text)


def _row_count(data: Mapping[str, Any]) -> int | None:
    if isinstance(data.get("rows_affected"), int):
        return data["rows_affected"]
    counts = data.get("row_counts")
    if isinstance(counts, dict) and counts:
        return sum(v for v in counts.values() if isinstance(v, int))
    return None


def _statement(entry: Any, resolve: Resolve) -> Statement:
    return Statement(time=entry.occurred_at, author=resolve(entry.author_id), text=plain_text(entry.text, resolve))


def _questions(
    flags: Sequence[Any], flag_entries: Sequence[Any], question_entries: Sequence[Any], resolve: Resolve
) -> list[Question]:
    by_id = {e.id: e for e in flag_entries}
    questions = []
    for flag in flags:
        entry = by_id.get(flag.entry_id)  # a withdrawn flag (entry deleted) is no longer a question
        if flag.status == FlagStatus.OPEN and entry is not None:
            questions.append(
                Question(
                    source=f"Yellow flag #{flag.number}",
                    author=resolve(entry.author_id),
                    text=plain_text(entry.text, resolve),
                )
            )
    questions += [
        Question(source="Question", author=resolve(e.author_id), text=plain_text(e.text, resolve))
        for e in question_entries
    ]
    return questions


def _action_items(tasks: Sequence[Task], resolve: Resolve) -> list[ActionItem]:
    actions = [t for t in tasks if t.kind == TaskKind.ACTION]
    open_assignments = [t for t in tasks if t.kind == TaskKind.ASSIGNMENT and t.status == TaskStatus.OPEN]
    return [
        ActionItem(item=plain_text(t.text, resolve), owner=resolve(t.owner_id), status=t.status, due_at=t.due_at)
        for t in actions + open_assignments
    ]


def spans_from_entries(entries: Iterable[Any]) -> list[Span]:
    """Backup time -> damage start is data the backup cannot give back; damage start -> end is the damage."""
    backup = damage_start = damage_end = None
    for entry in entries:
        if entry.kind != EntryKind.RESTORE or not entry.data:
            continue
        backup = _parse_time(entry.data.get("backup_time")) or backup
        damage_start = _parse_time(entry.data.get("damage_start")) or damage_start
        damage_end = _parse_time(entry.data.get("damage_end")) or damage_end
    spans = []
    if backup and (damage_start or damage_end):
        spans.append(Span(kind="gap", label="after the backup", start=backup, end=damage_start or damage_end))
    if damage_start and damage_end:
        spans.append(Span(kind="damage", label="damage", start=damage_start, end=damage_end))
    return spans


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
