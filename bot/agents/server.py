"""The MCP server: every registered tool (`bot.agents.tools.TOOLS`) served with the official SDK's `MCPServer`.

Each tool keeps its function's parameters as its input schema and publishes `ToolResult` as its output schema. A
refusal is a result with `isError` set and the service's message, so the agent reads why and can ask again. A call
the SDK answers without reaching a tool (an unknown name, arguments that fail the schema) is audited by
`AuditUnreached`, so every call is in the log.
"""

import inspect
from contextvars import ContextVar
from typing import Annotated, Any

import anyio.to_thread
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import MCPServer
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel

from bot.agents.results import ToolResult
from bot.agents.tools import TOOLS, Agent, ToolSpec

# Set per tools/call by AuditUnreached; a tool function that runs marks it (its worker thread gets a copy of the
# context, which refers to the same list).
_REACHED: ContextVar[list[str] | None] = ContextVar("rewind_tool_reached", default=None)

INSTRUCTIONS = (
    "Rewind helps restore data a script destroyed in production. You can read (targets, read-only queries on "
    "replica and backup databases, diffs, dependencies, gaps, restore plans) and propose SQL for production. People "
    "approve proposals in Slack; you can never approve or execute one. Start with rewind_targets."
)


def build_server(agent: Agent) -> MCPServer:
    server: MCPServer = MCPServer(name="rewind", instructions=INSTRUCTIONS, middleware=[AuditUnreached(agent)])
    for spec in TOOLS.values():
        server.add_tool(
            _bound(agent, spec),
            name=spec.name,
            description=spec.description,
            annotations=ToolAnnotations(
                read_only_hint=spec.read_only, destructive_hint=False, idempotent_hint=spec.read_only
            ),
            structured_output=True,
        )
    return server


def _bound(agent: Agent, spec: ToolSpec) -> Any:
    """The tool function without its `agent` parameter, answering with a `CallToolResult` that carries the envelope."""

    def run(**arguments: Any) -> CallToolResult:
        reached = _REACHED.get()
        if reached is not None:
            reached.append(spec.name)
        result = agent.call(spec.name, **arguments)
        return CallToolResult(
            content=[TextContent(type="text", text=result.model_dump_json())],
            structured_content=result.model_dump(mode="json"),
            is_error=not result.ok,
        )

    signature = inspect.signature(spec.fn)
    run.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=list(signature.parameters.values())[1:],
        return_annotation=Annotated[CallToolResult, ToolResult],
    )
    run.__name__ = spec.name
    run.__doc__ = spec.fn.__doc__
    return run


class AuditUnreached:
    """Middleware: a tools/call that no tool function ran is audited as refused, with the SDK's answer as detail."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method != "tools/call":
            return await call_next(ctx)
        reached: list[str] = []
        token = _REACHED.set(reached)
        detail = "no answer"
        try:
            result = await call_next(ctx)
            detail = _text_of(result) or detail
            return result
        except Exception as exc:
            detail = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            _REACHED.reset(token)
            if not reached:
                params = ctx.params or {}
                name, arguments = str(params.get("name") or "?"), params.get("arguments")
                await anyio.to_thread.run_sync(
                    lambda: self.agent.record_unreached(name, arguments if isinstance(arguments, dict) else {}, detail)
                )


def _text_of(result: HandlerResult) -> str | None:
    """The first text block of a tool result, whichever form (model or dict) the SDK hands the middleware."""
    data = result.model_dump(mode="json", by_alias=True) if isinstance(result, BaseModel) else result
    content = data.get("content") if isinstance(data, dict) else None
    if isinstance(content, list) and content and isinstance(content[0], dict):
        text = content[0].get("text")
        return str(text) if text else None
    return None


__all__ = ["INSTRUCTIONS", "AuditUnreached", "build_server"]
