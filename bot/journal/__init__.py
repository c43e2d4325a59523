"""The journal's store side: journals in the state store, claimed syncs, WAL-retention checks, log, row history
and undo. Slack-free; `bot/journal/cli.py` is the `rewind journal` / `rewind undo` command."""
