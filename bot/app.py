"""The composition root: builds the Bolt App and plugs in every handler module."""

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

from bot.journal.service import WalAlert
from bot.scribe.names import UserDirectory, name_from_profile
from bot.services import Services
from handlers import approvals, commands, journal, messages, postmortem, reactions, restore, shortcuts
from handlers.restore_views import SlackNotifier
from handlers.slackio import WorkspaceClient, speak_the_workspace_command

LISTENER_THREADS = 32
LOCAL_SIGNING_SECRET = "rewind-shell-mode"  # shell mode signs its own requests; never used with real Slack


def build_client(services: Services) -> WebClient:
    settings = services.settings
    client = WorkspaceClient(
        token=settings.slack_bot_token or "xoxb-local",
        base_url=settings.slack_api_url,
        slash_command=settings.slash_command,
    )
    client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=3))
    return client


def build_app(
    services: Services,
    *,
    client: WebClient | None = None,
    signing_secret: str | None = None,
    process_before_response: bool = False,
) -> App:
    """A Bolt App whose every Web API call goes to `settings.slack_api_url`.

    `process_before_response` runs listeners before answering: the shell uses it so replies print in order.
    """
    settings = services.settings
    app = App(
        client=client or build_client(services),
        signing_secret=signing_secret or settings.slack_signing_secret or LOCAL_SIGNING_SECRET,
        logger=logging.getLogger("rewind.bolt"),
        ignoring_self_events_enabled=True,
        process_before_response=process_before_response,
        # Bolt's default pool has 5 threads; listeners that wait on the Web API would hold every one of them and
        # make the next slash command wait for a thread before it can even be acknowledged.
        listener_executor=ThreadPoolExecutor(max_workers=LISTENER_THREADS, thread_name_prefix="rewind-listener"),
    )
    services.names = UserDirectory(lambda user_id: _lookup_name(app.client, user_id))
    services.approvals.group_members = lambda group: app.client.usergroups_users_list(usergroup=group)["users"]
    speak_the_workspace_command(app, settings.slash_command)
    for module in (commands, reactions, approvals, restore, messages, shortcuts, postmortem):
        module.register(app, services)
    reactions.register_unmatched(app)  # last: Bolt runs the first listener that matches
    return app


def bind_slack_without_bolt(services: Services) -> WebClient:
    """For a process that posts to Slack but receives no events (`rewind mcp`, `rewind exec --request`): proposals and
    restore work speak through the Web API, as in the bot. The bot process, sharing the store, handles the reactions
    on them."""
    client = build_client(services)
    services.jobs.bind(SlackNotifier(client))
    services.approvals.group_members = lambda group: client.usergroups_users_list(usergroup=group)["users"]
    return client


def journal_warner(client: WebClient, channel: str | None) -> Callable[[WalAlert], None]:
    """How the scheduler warns that a journal's slot keeps too much WAL: in the configured channel, else the log."""

    def warn(alert: WalAlert) -> None:
        text = journal.wal_warning(alert)
        if channel:
            client.chat_postMessage(channel=channel, text=text)
        else:
            logging.getLogger("rewind.journal").warning("%s (set REWIND_JOURNAL_ALERT_CHANNEL to post it)", text)

    return warn


def _lookup_name(client: WebClient, user_id: str) -> str | None:
    return name_from_profile(client.users_info(user=user_id).get("user") or {})
