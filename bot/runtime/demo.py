"""`rewind demo`: a whole incident on an embedded database, with nothing to install or configure.

It starts a private Postgres cluster, builds the shop database, starts the change journal on it, takes last night's
`pg_dump`, then replays the incident: traffic, the careless consolidation script, more traffic. Targets `shop`
(production) and the backup `nightly` are configured, and shell mode opens in a declared incident channel.
Everything it started lives in one temporary folder, removed on `:quit`, at the end of piped input, on Ctrl-C and
on SIGTERM, so each demo starts clean.
"""

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

import psycopg

from bot.config import Settings, load_settings
from bot.journal.service import start_journal
from bot.runtime import shop
from bot.store import open_store
from restore.cluster import LOGICAL_DECODING, ThrowawayCluster, find_pg_bindir
from restore.targets import TargetRole

TITLE = "Legacy prices deleted by the consolidation script"


def intro(damage: shop.Damage, slash: str) -> str:
    undo = f"{slash} undo {' '.join(map(str, damage.xids))}".ljust(len(slash) + 47)
    return f"""\
── Rewind demo ──────────────────────────────────────────────────────────────────────────────────────────────
Last night at 04:00 the shop database was dumped (backup `nightly`). This morning a "consolidate pricing models"
script ran against production (`shop`) by mistake. It deleted {damage.products_deleted} legacy products and \
{damage.prices_deleted} prices of Her Village LLC, repointed {damage.purchases_repointed} purchases to one \
consolidated price, and merged {damage.customers_merged} customers who shared an email. Customers kept buying
before and after it ran. You are in the incident channel. Try, in order:
  {slash} replica up nightly                        a queryable copy of last night's backup
  {slash} diff products                             what the script deleted or changed
  {slash} deps products deleted                     the prices and purchases that pointed at them
  {slash} plan products deleted with dependents     the restore script, posted as a proposal [n]
  :user angi   then   +white_check_mark n          approve it as someone else (two approvals are needed)
  :user bob    then   +white_check_mark n          …and it runs once, then checks itself against the backup
  {slash} journal log                               every transaction since the journal started, from the WAL
  {undo}the script's transactions undone, from the journal:
                                                   also what customers bought after the backup
  {slash} query nightly select count(*) from products
  {slash} postmortem                                the post-mortem, saved under rewind-files/
:help lists the shell's own commands; :quit stops the demo and removes its database.
─────────────────────────────────────────────────────────────────────────────────────────────────────────────"""


def run_demo(stdin: TextIO, stdout: TextIO, *, interactive: bool) -> int:
    from bot.runtime.start import prepare, run_shell

    def say(text: str) -> None:
        print(text, file=stdout, flush=True)

    with _stopped_on_sigterm(), demo_world(say) as (settings, damage):
        services = prepare(settings)
        try:
            opening = [f"{settings.slash_command} declare {TITLE}"]
            return run_shell(
                services,
                stdin,
                stdout,
                opening=opening,
                banner=intro(damage, settings.slash_command),
                interactive=interactive,
            )
        finally:
            services.jobs.shutdown()
            services.store.dispose()


@contextmanager
def demo_world(say: Callable[[str], None]) -> Iterator[tuple[Settings, shop.Damage]]:
    """The cluster, the shop, the dump and the damage; all of it removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix="rewind-demo-"))
    root.chmod(0o755)  # run as root, the cluster runs as an unprivileged user who must reach its folder inside
    cluster = ThrowawayCluster(root / "pg", settings=LOGICAL_DECODING)
    previous_state_dir = os.environ.get("REWIND_STATE_DIR")
    os.environ["REWIND_STATE_DIR"] = str(root / "state")  # replicas the demo provisions are registered here
    try:
        started = time.perf_counter()
        say("Starting a private Postgres cluster and building the shop database…")
        cluster.start()
        shop_dsn = _create_database(cluster.dsn, "shop")
        shop.create(shop_dsn)
        settings = _settings(root, cluster, shop_dsn, root / "nightly.dump")
        _start_journal(settings)  # from before the dump, so both ways back can be tried
        dump = root / "nightly.dump"
        _pg_dump(shop_dsn, dump)
        shop.traffic(shop_dsn, purchases=60, salt=1)
        damage = shop.consolidate_pricing_models(shop_dsn)
        shop.traffic(shop_dsn, purchases=40, salt=2)
        say(f"Ready in {time.perf_counter() - started:.1f} s.")
        yield settings, damage
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
        if previous_state_dir is None:
            os.environ.pop("REWIND_STATE_DIR", None)
        else:
            os.environ["REWIND_STATE_DIR"] = previous_state_dir


def _settings(root: Path, cluster: ThrowawayCluster, shop_dsn: str, dump: Path) -> Settings:
    return load_settings(
        slack_bot_token=None,
        slack_app_token=None,
        slack_signing_secret=None,
        database_url=f"sqlite:///{root / 'rewind.db'}",
        targets={"shop": {"dsn": shop_dsn, "role": TargetRole.PRODUCTION.value}},
        targets_file=None,
        backups={"nightly": str(dump)},
        replica_server_dsn=cluster.dsn,
        live_target="shop",
        backup_target=None,
        live_replica_target=None,
        approvers=[],
        approver_group=None,
    )


def _start_journal(settings: Settings) -> None:
    store = open_store(settings.database_url)
    try:
        start_journal(store, settings.all_targets(), "shop", set_replica_identity_full=True)
    finally:
        store.dispose()


def _create_database(admin_dsn: str, name: str) -> str:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return admin_dsn.rsplit("/", 1)[0] + "/" + name


def _pg_dump(dsn: str, path: Path) -> None:
    subprocess.run([str(find_pg_bindir("pg_dump") / "pg_dump"), "-Fc", "-f", str(path), dsn], check=True)


@contextmanager
def _stopped_on_sigterm() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so the cluster is stopped and its folder removed either way."""

    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
