"""A journal sink that keeps everything in lists: the restore toolkit's tests drain slots without the bot's store."""

from collections.abc import Sequence

from restore.journal.sync import Change, Progress, RelationVersion, Transaction


class ListSink:
    def __init__(self) -> None:
        self.changes: list[Change] = []
        self.transactions: list[Transaction] = []
        self.relations: list[RelationVersion] = []
        self.stored = Progress()

    def progress(self) -> Progress:
        return self.stored

    def write(
        self,
        changes: Sequence[Change],
        transactions: Sequence[Transaction],
        relations: Sequence[RelationVersion],
        before: Progress,
        after: Progress,
    ) -> None:
        assert before == self.stored, "progress moved under the sync"
        self.changes += changes
        self.transactions += transactions
        self.relations += relations
        self.stored = after
