"""Restore work run from the channel: target resolution, background jobs, the proposal flow."""
