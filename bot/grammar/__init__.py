"""The `/inc` language, Slack-free: scribe commands, restore commands, typed times."""
