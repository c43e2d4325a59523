"""Run modes: Socket Mode, the HTTP server and shell mode (the terminal channel)."""
