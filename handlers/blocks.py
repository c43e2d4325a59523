"""Block Kit rendering. Each function returns a `Reply`: fallback text plus blocks."""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from bot.errors import UsageError
from bot.grammar.commands import HELP
from bot.grammar.slacktext import escape
from bot.grammar.times import format_time
from bot.manifest import SLASH_COMMAND, with_slash_command_everywhere
from bot.scribe.incidents import Summary
from bot.scribe.runofshow import mention
from bot.store.models import Entry, EntryKind, Flag, FlagStatus, Incident, Step, Task, TaskKind

Block = dict[str, Any]
MAX_SECTION = 2900  # Slack caps a section's text at 3,000 characters


@dataclass
class Reply:
    text: str
    blocks: list[Block] = field(default_factory=list)
    public: bool = False  # posted to the channel; otherwise only the person who typed sees it
    followup: Callable[[], None] | None = None  # slow work, run after the ack (the reply says it has started)

    def payload(self, slash: str = SLASH_COMMAND) -> dict[str, Any]:
        """The reply as Slack takes it, naming the slash command as the workspace configured it."""
        return with_slash_command_everywhere({"text": self.text, "blocks": self.blocks or [section(self.text)]}, slash)


def section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _clip(text)}}


def button(label: str, action_id: str, value: str) -> Block:
    return {
        "type": "actions",
        "elements": [
            {
                "type": "button",
                "text": {"type": "plain_text", "text": label},
                "action_id": action_id,
                "value": value,
                "style": "primary",
            }
        ],
    }


def context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": _clip(text)}]}


def header(text: str) -> Block:
    return {"type": "header", "text": {"type": "plain_text", "text": text[:150], "emoji": True}}


def _clip(text: str) -> str:
    return text if len(text) <= MAX_SECTION else text[: MAX_SECTION - 1] + "…"


def error(exc: Exception, slash: str) -> Reply:
    lines = [f":warning: {exc}"]
    example = getattr(exc, "example", None) if isinstance(exc, UsageError) else None
    if example:
        shown = example if example.startswith("/") else f"{slash} {example}"
        lines.append(f"Try: `{shown}`")
    return Reply("\n".join(lines))


def help_text(slash: str) -> Reply:
    rows = "\n".join(f"`{slash} {usage}` — {what}" for usage, what in HELP)
    return Reply(f"Rewind commands:\n{rows}", [header("Rewind commands"), section(rows)])


def declared(incident: Incident, zone: ZoneInfo) -> Reply:
    text = (
        f":rotating_light: *{escape(incident.title)}*\nDeclared by {mention(incident.declared_by)} at "
        f"{format_time(incident.declared_at, zone)}. React with :pushpin: to add a message to the timeline, "
        ":large_yellow_circle: to raise a yellow flag. `/inc help` lists the commands."
    )
    return Reply(
        f"Incident declared: {escape(incident.title)}", [header(f"Incident: {incident.title}"), section(text)], True
    )


def entry_line(entry: Entry, zone: ZoneInfo) -> str:
    who = mention(entry.author_id)  # Slack shows the person's current name
    text = f":large_yellow_circle: Yellow flag: {entry.text}" if entry.kind == EntryKind.FLAG else entry.text
    return f"`{format_time(entry.occurred_at, zone, entry.approximate)}` {text} — {who}"


def noted(entry: Entry, zone: ZoneInfo) -> Reply:
    return Reply(f":pushpin: Noted: {entry_line(entry, zone)}", public=True)


def flag_raised(flag: Flag, text: str) -> Reply:
    return Reply(f":large_yellow_circle: Yellow flag {flag.number} raised: {text}", public=True)


def flag_resolved(flag: Flag) -> Reply:
    return Reply(f":white_circle: Yellow flag {flag.number} resolved: {flag.resolution}", public=True)


def flags(rows: list[tuple[Flag, Entry]]) -> Reply:
    if not rows:
        return Reply("No yellow flags yet. Raise one with `/inc flag <text>` or react with :large_yellow_circle:.")
    lines = [_flag_line(flag, entry) for flag, entry in rows]
    return Reply("Yellow flags:\n" + "\n".join(lines))


def _flag_line(flag: Flag, entry: Entry) -> str:
    if flag.status == FlagStatus.OPEN:
        return f":large_yellow_circle: *{flag.number}.* {entry.text} — open"
    return f":white_circle: *{flag.number}.* ~{entry.text}~ — resolved: {flag.resolution}"


def steps_lines(steps: list[Step]) -> str:
    icons = {"pending": ":white_small_square:", "in progress": ":arrow_forward:", "done": ":white_check_mark:"}
    return "\n".join(
        f"{icons.get(s.status, '')} *{s.position}.* {s.title} — {s.status}"
        + (f", {mention(s.owner_id)}" if s.owner_id else "")
        for s in steps
    )


def plan_set(steps: list[Step]) -> Reply:
    return Reply("Run of show:\n" + steps_lines(steps), public=True)


def step_updated(step: Step) -> Reply:
    return Reply(steps_lines([step]), public=True)


def task_created(task: Task) -> Reply:
    label = "Assigned" if task.kind == TaskKind.ASSIGNMENT else "Action item"
    return Reply(f":bust_in_silhouette: {label} {task.number} to {mention(task.owner_id)}: {task.text}", public=True)


def tasks(rows: list[Task]) -> Reply:
    if not rows:
        return Reply("No assignments or action items yet. Add one with `/inc action @owner <follow-up>`.")
    lines = [
        f"*{'Action' if t.kind == TaskKind.ACTION else 'Assignment'} {t.number}.* {t.text} — "
        f"{mention(t.owner_id)}, {t.status}"
        for t in rows
    ]
    return Reply("Assignments and action items:\n" + "\n".join(lines))


def timeline(entries: list[Entry], zone: ZoneInfo) -> Reply:
    if not entries:
        return Reply("The timeline is empty.")
    return Reply("Timeline:\n" + "\n".join(entry_line(e, zone) for e in entries))


def status(summary: Summary, zone: ZoneInfo) -> Reply:
    incident = summary.incident
    parts = [
        f"*{escape(incident.title)}* — {incident.status}, declared {format_time(incident.declared_at, zone)}",
        "*Open yellow flags*\n"
        + ("\n".join(_flag_line(f, e) for f, e in summary.open_flags) if summary.open_flags else "none"),
        "*Run of show*\n" + (steps_lines(summary.steps) or "not set (`/inc plan <step>; <step>`)"),
        "*Who does what*\n"
        + ("\n".join(f"{mention(t.owner_id)}: {t.text}" for t in summary.open_tasks) or "nobody assigned"),
        "*Last entries*\n" + ("\n".join(entry_line(e, zone) for e in summary.recent) or "none"),
    ]
    return Reply("\n\n".join(parts), [section(p) for p in parts])


def status_changed(incident: Incident, slash: str, write_action: str) -> Reply:
    text = f":white_check_mark: Incident {incident.status}: {escape(incident.title)}"
    if incident.status != "resolved":
        return Reply(text, public=True)
    offer = f"Write the post-mortem now? (or type `{slash} postmortem` later)"
    return Reply(
        f"{text}\n{offer}",
        [section(text), section(offer), button("Write the post-mortem", write_action, incident.channel_id)],
        public=True,
    )


def recorded(kind: str, text: str) -> Reply:
    return Reply(f":memo: {kind.capitalize()} recorded: {text}", public=True)
