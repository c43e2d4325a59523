"""Restore work in the background: a small thread pool, and each job's progress thread in the channel.

Slash commands must be acknowledged within three seconds, so a service checks what it can at once (targets, the
`where` rule, the parser's verdict) and `submit()`s the slow part here. A job posts a message, keeps a progress reply
in its thread updated, and says how it ended.
"""

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

from bot.errors import ConfigError
from bot.restore_work.notifier import Notifier
from restore.targets import mask_dsn

log = logging.getLogger("rewind.restore")

WORKERS = 4
PROGRESS_LINES = 12  # the progress reply keeps the last lines only


class Background:
    """The thread pool restore jobs run on, and the notifier they speak through."""

    def __init__(self, workers: int = WORKERS) -> None:
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rewind-job")
        self.notifier: Notifier | None = None
        self._pending: set[Future[Any]] = set()
        self._pending_lock = threading.Lock()

    def bind(self, notifier: Notifier) -> None:
        """The composition root hands over the Slack side once the app's client exists."""
        self.notifier = notifier

    @property
    def notify(self) -> Notifier:
        if self.notifier is None:
            raise ConfigError("Restore jobs have no notifier: build the app with bot.app.build_app first.")
        return self.notifier

    def submit(self, work: Callable[..., Any], *args: Any) -> Future[Any]:
        def run() -> Any:
            try:
                return work(*args)
            except Exception:
                log.exception("background job %s failed", getattr(work, "__name__", work))
                raise

        future = self.executor.submit(run)
        with self._pending_lock:
            self._pending.add(future)
        future.add_done_callback(self._forget)
        return future

    def _forget(self, future: Future[Any]) -> None:
        with self._pending_lock:
            self._pending.discard(future)

    def wait_idle(self) -> None:
        """Until every submitted job, and any job those jobs submitted, has finished (shell mode's piped input)."""
        while True:
            with self._pending_lock:
                pending = list(self._pending)
            if not pending:
                return
            wait(pending)

    def progress(self, channel: str, user: str, title: str) -> "Progress":
        return Progress(self.notify, channel, user, title)

    def shutdown(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=False)


class Progress:
    """A job's threaded progress reply, updated in place. Lines are plain text with DSNs masked."""

    def __init__(self, notifier: Notifier, channel: str, user: str, title: str) -> None:
        self.notifier, self.title = notifier, title
        self.thread = notifier.job_started(channel, user, title)
        self.lines: list[str] = []

    def say(self, line: str) -> None:
        self.lines = [*self.lines, mask_dsn(line)][-PROGRESS_LINES:]
        self.notifier.job_progress(self.thread, self.lines)

    def done(self, summary: str) -> None:
        self.notifier.job_done(self.thread, self.title, summary)
        self.say(f"Done: {summary}")

    def failed(self, error: str) -> None:
        self.notifier.job_failed(self.thread, self.title, mask_dsn(error))
        self.say(f"Failed: {mask_dsn(error)}")


__all__ = ["Background", "Progress"]
