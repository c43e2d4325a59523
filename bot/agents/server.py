"""The MCP server: every registered tool (`bot.agents.tools.TOOLS`) served with the official SDK's `MCPServer`.

Each tool keeps its function's parameters as its input schema and publishes `ToolResult` as its output schema. A
refusal is a result with `isError` set and the service's message, so the agent reads why and can ask again.
"""

import inspect
from typing import Annotated, Any

from mcp.server.mcpserver import MCPServer
from mcp.types import CallToolResult, TextContent, ToolAnnotations

from bot.agents.results import ToolResult
from bot.agents.tools import TOOLS, Agent, ToolSpec

INSTRUCTIONS = (
    "Rewind helps restore data a script destroyed in production. You can read (targets, read-only queries on "
    "replica and backup databases, diffs, dependencies, gaps, restore plans) and propose SQL for production. People "
    "approve proposals in Slack; you can never approve or execute one. Start with rewind_targets."
)


def build_server(agent: Agent) -> MCPServer:
    server: MCPServer = MCPServer(name="rewind", instructions=INSTRUCTIONS)
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


__all__ = ["INSTRUCTIONS", "build_server"]
