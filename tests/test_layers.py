"""Imports go one way, handlers -> bot -> restore; in bot/ only the composition root imports handlers; the domain
packages take plain values and know nothing of Slack; handlers talk to the real Slack API, never the local stand-in."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
COMPOSITION_ROOT = ROOT / "bot" / "app.py"
SLACK_LIBRARIES = {"slack_bolt", "slack_sdk"}
# The packages and modules that hold what Rewind knows and does, apart from how Slack delivers it. A package listed
# here that does not exist yet (journal) is picked up as soon as it does.
DOMAIN_PACKAGES = (
    "scribe",
    "grammar",
    "approvals",
    "restore_work",
    "importing",
    "postmortem",
    "store",
    "journal",
    "agents",
)
DOMAIN_MODULES = ("services.py", "config.py", "errors.py")


def imported_modules(path: Path) -> set[str]:
    """Every absolute import in a file as dotted names: `from a.b import c` gives `a.b` and `a.b.c`, since `c` may be a
    module (`from bot import localslack`)."""
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def imported_packages(path: Path) -> set[str]:
    return {name.split(".")[0] for name in imported_modules(path)}


def domain_files() -> list[Path]:
    files = [ROOT / "bot" / name for name in DOMAIN_MODULES]
    for package in DOMAIN_PACKAGES:
        files.extend(sorted((ROOT / "bot" / package).rglob("*.py")))
    return files


def relative(path: Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("path", sorted((ROOT / "restore").rglob("*.py")), ids=relative)
def test_restore_imports_neither_bot_handlers_nor_slack(path: Path) -> None:
    assert not imported_packages(path) & {"bot", "handlers", *SLACK_LIBRARIES}


@pytest.mark.parametrize("path", sorted((ROOT / "bot").rglob("*.py")), ids=relative)
def test_only_the_composition_root_imports_handlers(path: Path) -> None:
    if path != COMPOSITION_ROOT:
        assert "handlers" not in imported_packages(path)


@pytest.mark.parametrize("path", domain_files(), ids=relative)
def test_domain_modules_know_nothing_of_slack_libraries(path: Path) -> None:
    assert not imported_packages(path) & SLACK_LIBRARIES


@pytest.mark.parametrize("path", sorted((ROOT / "handlers").rglob("*.py")), ids=relative)
def test_handlers_never_import_the_local_stand_in(path: Path) -> None:
    assert not {name for name in imported_modules(path) if name.split(".")[:2] == ["bot", "localslack"]}
