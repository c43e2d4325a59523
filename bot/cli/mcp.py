"""`rewind mcp`: the agent tools (bot/agents) over the Model Context Protocol, on stdin and stdout.

The agent reads (targets, read-only queries on replica and backup targets, diff, deps, gap, plan) and proposes;
proposals are posted to the incident channel through the Slack Web API when SLACK_BOT_TOKEN is set, and the bot
process, which shares the store, handles the approvals there. Logs go to standard error: standard output is the
protocol. `bot.cli` adds it with `register(subparsers, settings_loader)`.
"""

import argparse
from collections.abc import Callable

from bot.config import Settings

SettingsLoader = Callable[[], Settings]


def register(
    subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]", settings_loader: SettingsLoader
) -> None:
    parser = subparsers.add_parser(
        "mcp", help="serve the agent tools over the Model Context Protocol (stdio): read-only tools and proposals"
    )
    parser.set_defaults(func=lambda args: run(settings_loader()))


def run(settings: Settings) -> int:
    from bot.agents.server import build_server
    from bot.agents.tools import Agent
    from bot.app import bind_slack_without_bolt
    from bot.logging import configure_logging
    from bot.services import Services
    from bot.store import open_store

    configure_logging(quiet=True)
    store = open_store(settings.database_url)
    services = Services.create(settings, store)
    if settings.slack_bot_token:
        bind_slack_without_bolt(services)
    try:
        build_server(Agent(services)).run("stdio")
    finally:
        services.jobs.shutdown()
        store.dispose()
    return 0
