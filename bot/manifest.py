"""Identifiers manifest.yml declares, shared by the app, shell mode and the tests.

Slack routes a shortcut or a slash command by the name the app's manifest gives it, so these must match manifest.yml
exactly; tests/bot/test_manifest.py reads the manifest and checks that they do.
"""

ADD_TO_TIMELINE = "add_to_timeline"  # the "Add to timeline" message shortcut's callback_id
SLASH_COMMAND = "/inc"  # the slash command; a workspace that renamed it sets REWIND_SLASH_COMMAND instead
