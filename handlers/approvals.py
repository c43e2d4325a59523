"""✅ / ❌ on a proposal message, and its Approve / Reject buttons; how a proposal message looks.

Listeners are thin: find the proposal the message carries, ask `services.approvals`, then render. Reactions that
count for nothing get an ephemeral explanation. The decision itself (and who executes) is the store's.
"""

import logging
import re
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.approvals.policy import is_agent
from bot.approvals.views import COMMAND, Decision, ProposalView, Verdict
from bot.services import Services
from handlers.blocks import Block, context, header, section
from handlers.slackio import fetch_message
from restore.targets import mask_dsn

log = logging.getLogger("rewind.approvals")

APPROVE_ACTION = "proposal_approve"
REJECT_ACTION = "proposal_reject"
INLINE_SQL_CHARS = 1500
STATUS_ICONS = {
    "proposed": ":ballot_box_with_check:",
    "approved": ":white_check_mark:",
    "executing": ":gear:",
    "executed": ":white_check_mark:",
    "failed": ":x:",
    "rejected": ":no_entry_sign:",
    "expired": ":hourglass:",
    "superseded": ":arrows_counterclockwise:",
}
PROPOSAL_BLOCK = re.compile(r"^proposal-(?P<id>\d+)$")
EXPLAINED = (Verdict.PROPOSER, Verdict.NOT_ELIGIBLE, Verdict.NOT_PENDING, Verdict.ALREADY)


def register(app: App, services: Services) -> None:
    settings = services.settings
    ours = {settings.emoji_approve, settings.emoji_reject}

    def proposal_emoji(event: dict[str, Any]) -> bool:
        return event.get("reaction") in ours and event.get("item", {}).get("type") == "message"

    @app.event("reaction_added", matchers=[proposal_emoji])
    def on_added(event: dict[str, Any], body: dict[str, Any], client: WebClient) -> None:
        item = event["item"]
        proposal = _proposal_for(services, client, item["channel"], item["ts"])
        if proposal is None:
            return
        act = services.approvals.approve if event["reaction"] == settings.emoji_approve else services.approvals.reject
        _after(
            services,
            client,
            item["channel"],
            event["user"],
            act(proposal.id, event["user"], event_id=body.get("event_id")),
        )

    @app.event("reaction_removed", matchers=[proposal_emoji])
    def on_removed(event: dict[str, Any], body: dict[str, Any], client: WebClient) -> None:
        item = event["item"]
        if event["reaction"] != settings.emoji_approve:
            return
        proposal = _proposal_for(services, client, item["channel"], item["ts"])
        if proposal is None:
            return
        decision = services.approvals.revoke(proposal.id, event["user"], event_id=body.get("event_id"))
        if decision.verdict is Verdict.REVOKED and decision.proposal is not None:
            services.jobs.proposals.decided(decision.verdict, decision.proposal)

    @app.action(APPROVE_ACTION)
    def on_approve(ack: Ack, body: dict[str, Any], action: dict[str, Any], client: WebClient) -> None:
        ack()
        user, channel = body["user"]["id"], body["channel"]["id"]
        _after(services, client, channel, user, services.approvals.approve(int(action["value"]), user))

    @app.action(REJECT_ACTION)
    def on_reject(ack: Ack, body: dict[str, Any], action: dict[str, Any], client: WebClient) -> None:
        ack()
        user, channel = body["user"]["id"], body["channel"]["id"]
        _after(services, client, channel, user, services.approvals.reject(int(action["value"]), user))


def _proposal_for(services: Services, client: WebClient, channel: str, ts: str) -> ProposalView | None:
    """The proposal a message carries. A reaction can beat the store to the message's ts (it is saved right after
    posting), so a bot message whose header block names a proposal is matched by that id, in the same channel."""
    proposal = services.approvals.find_by_message(channel, ts)
    if proposal is not None:
        return proposal
    message = fetch_message(client, channel, ts)
    if message is None or not message.get("bot_id"):
        return None
    for block in message.get("blocks") or []:
        found = PROPOSAL_BLOCK.match(str(block.get("block_id", "")))
        if found:
            candidate = services.approvals.get(int(found["id"]))
            if candidate.channel_id == channel and candidate.message_ts in (None, ts):
                services.approvals.attach_message(candidate.id, ts)
                return services.approvals.get(candidate.id)
    return None


def _after(services: Services, client: WebClient, channel: str, user: str, decision: Decision) -> None:
    if decision.verdict in EXPLAINED:
        try:
            client.chat_postEphemeral(channel=channel, user=user, text=f":information_source: {decision.explanation}")
        except SlackApiError as exc:
            log.info("explanation not delivered: %s", exc.response.get("error"))
        return
    if decision.changed and decision.proposal is not None:
        services.jobs.proposals.decided(decision.verdict, decision.proposal)


def proposal_message(p: ProposalView) -> tuple[str, list[Block]]:
    """The proposal as Slack shows it: target, hash, SQL, dry run, approvals and who may give them."""
    icon = STATUS_ICONS.get(p.status, "")
    title = f"Proposal #{p.number} on {p.target} — {p.status}"
    dry = p.dry_run
    if p.kind == COMMAND:
        dry_text = (
            "*Script run*: no dry run. Once approved, the `rewind exec --request` that asked runs it once, in its own "
            "environment. An edited script hashes differently, so these approvals would not apply to it."
        )
    elif dry.get("ok"):
        per_statement = "\n".join(
            f"{i}. `{s['statement'][:80]}` → {s['rows']:,} rows"
            for i, s in enumerate(dry.get("statements", [])[:15], 1)
        )
        more = len(dry.get("statements", [])) - 15
        per_statement += f"\n… {more} more statements" if more > 0 else ""
        dry_text = (
            f"*Dry run* (rolled back; statement_timeout {dry['statement_timeout_s']:g}s, lock_timeout "
            f"{dry['lock_timeout_s']:g}s): {dry['rows_affected']:,} rows in {dry['seconds']:.2f}s\n{per_statement}"
        )
    else:
        dry_text = f"*Dry run failed* — this proposal cannot be approved:\n{mask_dsn(str(dry.get('error')))}"
    sql_block = (
        f"```{p.sql_text.replace('```', '`‵`')}```"
        if len(p.sql_text) <= INLINE_SQL_CHARS
        else f"_{len(p.sql_text):,} characters: attached in the thread as a file._"
    )
    who = "anyone in the channel but the proposer" if not p.eligible else ", ".join(f"<@{u}>" for u in p.eligible)
    approvers = ", ".join(f"<@{u}>" for u in p.approvers) or "none yet"
    approvals = f"*Approvals* {len(p.approvers)}/{p.approvals_required}: {approvers}. Who may approve: {who}."
    # An agent is no Slack user to mention; people should see at a glance that a program proposed this.
    proposer = f"the agent `{p.proposer_id}`" if is_agent(p.proposer_id) else f"<@{p.proposer_id}>"
    blocks: list[Block] = [
        {**header(f"{icon} {title}"), "block_id": f"proposal-{p.id}"},
        section(f"*{p.summary}*\nProposed by {proposer} · target `{p.target}` · SHA-256 `{p.sql_sha256}`"),
        section(sql_block),
        section(dry_text),
        section(approvals),
    ]
    if p.pending:
        blocks.append(
            context(
                f"React with :white_check_mark: to approve (remove it to revoke) or :x: to reject. "
                f"Expires at {p.expires_at:%H:%M} UTC."
            )
        )
        blocks.append(
            {
                "type": "actions",
                "block_id": f"proposal-{p.id}-actions",
                "elements": [
                    _button("Approve", APPROVE_ACTION, str(p.id), "primary"),
                    _button("Reject", REJECT_ACTION, str(p.id), "danger"),
                ],
            }
        )
    elif p.result:
        if "exit_code" in p.result:
            outcome = f"the command exited with code {p.result['exit_code']}"
        else:
            outcome = p.result.get("error") or f"{p.result.get('rows_affected') or 0:,} rows"
        blocks.append(context(f"{p.status}: {mask_dsn(str(outcome))}"))
    text = f"{icon} {title}: {p.summary} (sha256 {p.short_hash}, approvals {len(p.approvers)}/{p.approvals_required})"
    return text, blocks


def _button(label: str, action_id: str, value: str, style: str) -> Block:
    return {
        "type": "button",
        "text": {"type": "plain_text", "text": label},
        "action_id": action_id,
        "value": value,
        "style": style,
    }
