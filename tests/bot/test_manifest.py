"""manifest.yml and bot/manifest.py name the same shortcut and slash command; Slack routes by these names, so a
mismatch would leave the app deaf to them with no error anywhere."""

from pathlib import Path

from bot.config import Settings
from bot.manifest import ADD_TO_TIMELINE, SLASH_COMMAND

MANIFEST = Path(__file__).resolve().parents[2] / "manifest.yml"


def feature_items(section: str) -> list[dict[str, str]]:
    """The list items under `features.<section>` in manifest.yml, each as its `key: value` lines.

    manifest.yml keeps to block-style YAML (one `key: value` per line, lists as `- `), which is all this reads; the
    project has no YAML parser among its dependencies and needs none at run time.
    """
    lines = MANIFEST.read_text().splitlines()
    start = lines.index("features:")
    items: list[dict[str, str]] = []
    inside, section_indent = False, 0
    for line in lines[start + 1 :]:
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        indent = len(line) - len(line.lstrip())
        if indent == 0:
            break  # the next top-level key: features ended
        if stripped == f"{section}:":
            inside, section_indent = True, indent
            continue
        if not inside:
            continue
        if indent <= section_indent:
            break
        if stripped.startswith("- "):
            items.append({})
            stripped = stripped[2:]
        key, _, value = stripped.partition(":")
        items[-1][key.strip()] = value.strip()
    return items


def test_the_message_shortcut_callback_id_is_the_one_the_app_listens_for() -> None:
    shortcuts = feature_items("shortcuts")
    assert [(s["type"], s["callback_id"]) for s in shortcuts] == [("message", ADD_TO_TIMELINE)]


def test_the_slash_command_is_the_default_the_app_expects() -> None:
    commands = feature_items("slash_commands")
    assert [c["command"] for c in commands] == [SLASH_COMMAND]
    assert Settings(_env_file=None).slash_command == SLASH_COMMAND
