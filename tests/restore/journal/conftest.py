"""The journal's tests run on their own cluster started with wal_level=logical."""

from tests.journal_cluster import journal_name, logical_pg, source_dsn

__all__ = ["journal_name", "logical_pg", "source_dsn"]
