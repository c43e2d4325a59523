"""Errors a user can cause. Each message says what went wrong and what to do instead."""


class RewindError(Exception):
    """Base of every error a user can cause; the message is safe to show (no DSN passwords)."""


class TargetError(RewindError):
    """An unknown target name, or a target used outside its role."""


class DumpError(RewindError):
    """A dump that cannot be read or restored."""


class ClusterError(RewindError):
    """A throwaway cluster that could not be started."""
