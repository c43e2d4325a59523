"""Backup vs live for one table, by key: rows deleted, added and changed (with the changed columns)."""

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from restore.targets import Target

DiffSide = Target | str


class ChangedRow(BaseModel):
    key: list[Any]
    columns: list[str]


class DiffResult(BaseModel):
    table: str
    key: list[str]
    deleted: list[list[Any]]
    added: list[list[Any]]
    changed: list[ChangedRow]
    counts: dict[str, int]


def diff_table(
    backup: DiffSide,
    live: DiffSide,
    table: str,
    *,
    where: str | None = None,
    key: Sequence[str] | None = None,
    deleted_only: bool = False,
) -> DiffResult:
    raise NotImplementedError("diff_table is being written (issue 3)")
