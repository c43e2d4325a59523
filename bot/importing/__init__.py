"""Rebuilding a timeline from a Slack export or a channel's history."""
