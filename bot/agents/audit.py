"""Every tool call in the store's append-only audit log: who (the agent), which tool, its arguments with any SQL,
the target and SQL hash it named, and how it ended. Written after the call, whatever the outcome."""

from typing import Any

from bot.approvals.policy import sql_sha256
from bot.store.models import AuditLog
from bot.store.session import Store
from bot.store.types import utcnow
from restore.targets import mask_dsn

OK, REFUSED, FAILED = "ok", "refused", "failed"


def record_call(
    store: Store,
    *,
    actor: str,
    tool: str,
    arguments: dict[str, Any],
    outcome: str,
    detail: str | None,
    seconds: float,
    incident_id: int | None = None,
    proposal_id: int | None = None,
) -> None:
    sql_text = arguments.get("sql")
    target = arguments.get("target")
    with store.transaction() as session:
        session.add(
            AuditLog(
                at=utcnow(),
                actor=actor,
                tool=tool,
                arguments=arguments,
                incident_id=incident_id,
                proposal_id=proposal_id,
                target=str(target) if target else None,
                sql_sha256=sql_sha256(sql_text) if isinstance(sql_text, str) else None,
                outcome=outcome,
                detail=mask_dsn(detail)[:2000] if detail else None,
                duration_s=round(seconds, 3),
            )
        )
