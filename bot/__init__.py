"""Rewind: the incident scribe and restore assistant (application layer)."""
