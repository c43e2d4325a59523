"""Rewind's Postgres restore toolkit: Slack-free, usable as a library and from the `rewind` CLI."""
