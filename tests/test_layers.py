"""DESIGN.md §1: imports go one way, handlers -> bot -> restore; in bot/ only the composition root imports handlers."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
COMPOSITION_ROOT = ROOT / "bot" / "app.py"


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("path", sorted((ROOT / "restore").rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_restore_imports_neither_bot_handlers_nor_slack(path: Path) -> None:
    assert not imported_packages(path) & {"bot", "handlers", "slack_bolt", "slack_sdk"}


@pytest.mark.parametrize("path", sorted((ROOT / "bot").rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_only_the_composition_root_imports_handlers(path: Path) -> None:
    if path != COMPOSITION_ROOT:
        assert "handlers" not in imported_packages(path)
