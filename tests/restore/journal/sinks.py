"""A journal sink that keeps everything in lists: the restore toolkit's tests drain slots without the bot's store."""

from collections.abc import Sequence

from restore.journal.chunks import Change, Chunk
from restore.journal.sync import Progress, RelationVersion, Transaction


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
        chunks: Sequence[Chunk],
        transactions: Sequence[Transaction],
        relations: Sequence[RelationVersion],
        before: Progress,
        after: Progress,
    ) -> None:
        assert before == self.stored, "progress moved under the sync"
        self.changes += [change for chunk in chunks for change in chunk.changes()]
        self.transactions += transactions
        self.relations += relations
        self.stored = after
