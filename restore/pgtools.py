"""Running Postgres's own programs (pg_dump, pg_restore, psql) without putting a password on their command line."""

import os
import subprocess
from typing import IO

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from restore.cluster import find_pg_bindir
from restore.errors import DumpError
from restore.targets import mask_dsn


def program(name: str) -> str:
    """The path of a Postgres program (pg_dump, pg_restore, psql) from the bindir Rewind uses."""
    return str(find_pg_bindir(name) / name)


def child_env() -> dict[str, str]:
    return {**os.environ, "PGCONNECT_TIMEOUT": "10"}


def dsn_without_password(dsn: str, env: dict[str, str]) -> str:
    """The DSN for a child's argv; the password travels in its environment, where `ps` does not show it."""
    params = conninfo_to_dict(dsn)
    password = params.pop("password", None)
    if password:
        env["PGPASSWORD"] = str(password)
    return make_conninfo(**params)


def run_pg(
    name: str, *args: str, dsn: str | None = None, stdin: IO[bytes] | None = None
) -> "subprocess.CompletedProcess[str]":
    """Run a Postgres program to completion; its failure is a DumpError carrying its (masked) stderr."""
    command = [program(name), *args]
    env = child_env()
    if dsn is not None:
        command += ["-d", dsn_without_password(dsn, env)]
    proc = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise DumpError(f"{name} failed: {mask_dsn(proc.stderr.strip())[-2000:]}")
    return proc
