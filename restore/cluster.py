"""Private throwaway Postgres clusters: initdb in a temp dir, started on a free port.

Postgres refuses to run as root, so when invoked as root the cluster is owned by and run as an unprivileged
system user. Used by `rewind replica up` (no --server) and by the test suite.
"""

import contextlib
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from restore.errors import ClusterError

_UNPRIVILEGED_USERS = ("postgres", "nobody")
_FAST_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "listen_addresses": "127.0.0.1",
    "max_connections": "200",
    "shared_buffers": "256MB",
    "maintenance_work_mem": "256MB",
    "max_wal_size": "4GB",
    "checkpoint_timeout": "30min",
    "autovacuum": "off",
    "log_min_messages": "warning",
}


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", path.parent.name) or ["0"])


def find_pg_bindir(program: str = "initdb") -> Path:
    """The newest directory of Postgres server binaries on this machine that holds `program`."""
    candidates = [p.parent for p in Path("/usr/lib/postgresql").glob(f"*/bin/{program}")]
    candidates += [p.parent for p in Path("/usr/local/pgsql").glob(f"bin/{program}")]
    if candidates:
        return max(candidates, key=lambda bindir: _version_key(bindir))
    found = shutil.which(program)
    if found:
        return Path(found).resolve().parent
    raise ClusterError(f"No Postgres server binaries ({program}) found; install postgresql or pass --server DSN.")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _unprivileged_ids() -> tuple[int, int] | None:
    """(uid, gid) to run Postgres as, or None when we are not root."""
    if os.geteuid() != 0:
        return None
    for name in _UNPRIVILEGED_USERS:
        with contextlib.suppress(KeyError):
            entry = pwd.getpwnam(name)
            return entry.pw_uid, entry.pw_gid
    raise ClusterError("Running as root and no unprivileged user (postgres, nobody) exists to own the cluster.")


def _demote(ids: tuple[int, int] | None) -> Callable[[], None] | None:
    if ids is None:
        return None
    uid, gid = ids

    def switch_user() -> None:
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)

    return switch_user


def _chown_tree(path: Path, ids: tuple[int, int] | None) -> None:
    if ids is None:
        return
    os.chown(path, *ids)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.chown(os.path.join(root, name), *ids)


class ThrowawayCluster:
    """A Postgres cluster in its own directory. `start()` then `stop()`; `dsn` connects as superuser `postgres`."""

    def __init__(
        self, root: Path | None = None, port: int | None = None, settings: Mapping[str, str] | None = None
    ) -> None:
        self.root = root or Path(tempfile.mkdtemp(prefix="rewind-pg-"))
        self.port = port or free_port()
        self.settings = {**_FAST_SETTINGS, **(settings or {})}
        self.bindir = find_pg_bindir()
        self._ids = _unprivileged_ids()

    @property
    def datadir(self) -> Path:
        return self.root / "data"

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        proc = subprocess.run(
            [str(self.bindir / args[0]), *args[1:]],
            capture_output=True,
            text=True,
            preexec_fn=_demote(self._ids),
            env={**os.environ, "LC_ALL": "C.UTF-8"},
            check=False,
        )
        if proc.returncode != 0:
            raise ClusterError(f"{args[0]} failed: {(proc.stderr or proc.stdout).strip()[-2000:]}")

    def init(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o755)
        _chown_tree(self.root, self._ids)
        # 1 MB WAL segments instead of 16: a new cluster (or the template it is copied from) is half the size.
        self._run(
            "initdb",
            "-D",
            str(self.datadir),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
            "--wal-segsize=1",
        )

    def start(self) -> "ThrowawayCluster":
        if not (self.datadir / "PG_VERSION").exists():
            self.init()
        options = " ".join(f"-c {k}={v}" for k, v in {**self.settings, "port": str(self.port)}.items())
        options += f" -k {self.root}"
        log = self.root / "postgres.log"
        self._run("pg_ctl", "-D", str(self.datadir), "-l", str(log), "-o", options, "-w", "-t", "60", "start")
        return self

    def running(self) -> bool:
        pidfile = self.datadir / "postmaster.pid"
        if not pidfile.exists():
            return False
        try:
            os.kill(int(pidfile.read_text().split()[0]), 0)
        except (OSError, ValueError):
            return False
        return True

    def stop(self, remove: bool = True) -> None:
        if self.running():
            try:
                self._run("pg_ctl", "-D", str(self.datadir), "-m", "immediate", "-w", "stop")
            except ClusterError:
                self._kill_postmaster()
        if remove:
            shutil.rmtree(self.root, ignore_errors=True)

    def _kill_postmaster(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            pid = int((self.datadir / "postmaster.pid").read_text().split()[0])
            os.kill(pid, signal.SIGKILL)
            time.sleep(0.2)

    def __enter__(self) -> "ThrowawayCluster":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
