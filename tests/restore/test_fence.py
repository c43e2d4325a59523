"""The fence on real servers: production is recognised by identity however it is reached, and copies are not."""

import argparse
import hashlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from bot.cli import main
from restore.cli import register as register_restore
from restore.cluster import ThrowawayCluster, _chown_tree, find_pg_bindir
from restore.fence import (
    FenceError,
    FenceStatus,
    Fingerprint,
    Hit,
    ProductionRefused,
    dsn_env_vars,
    find_production,
    fingerprint,
    learn_from_connection,
    login_can_write,
    preflight,
    production_fingerprints,
    read_only_role_sql,
    refuse_production,
    remember,
    script_sha256,
    write_check,
    write_warning,
)
from restore.targets import Target, TargetRole
from tests.pg import PgServer

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Learned fingerprints go to a directory of the test's own."""
    state = tmp_path / "state"
    monkeypatch.setenv("REWIND_STATE_DIR", str(state))
    monkeypatch.delenv("REWIND_TARGETS_FILE", raising=False)
    return state


@pytest.fixture(scope="module")
def prod_db(pg: PgServer) -> Iterator[str]:
    """A production database (name) with a table and rows, on the test server."""
    name = pg.create_database("prod")
    with psycopg.connect(pg.dsn_for(name), autocommit=True) as conn:
        conn.execute("CREATE TABLE orders (id int PRIMARY KEY, note text)")
        conn.execute("INSERT INTO orders SELECT g, 'order ' || g FROM generate_series(1, 50) g")
    yield name
    pg.drop_database(name)


def _server_params(pg: PgServer, dbname: str) -> dict[str, str]:
    params = {k: str(v) for k, v in conninfo_to_dict(pg.dsn_for(dbname)).items()}
    with psycopg.connect(pg.admin_dsn) as conn:
        port = conn.execute("SHOW port").fetchone()[0]
        sockets = conn.execute("SHOW unix_socket_directories").fetchone()[0]
    params["port"] = str(port)
    params["socket_dir"] = sockets.split(",")[0].strip()
    return params


def _routes(pg: PgServer, dbname: str) -> dict[str, str]:
    """The same database through 127.0.0.1, localhost, the Unix socket, and a URL with extra parameters."""
    p = _server_params(pg, dbname)
    base = {k: v for k, v in p.items() if k in ("user", "password", "dbname")}
    auth = quote(p.get("user", "postgres")) + (f":{quote(p['password'])}" if p.get("password") else "")
    return {
        "127.0.0.1": make_conninfo(**base, host="127.0.0.1", port=p["port"]),
        "localhost": make_conninfo(**base, host="localhost", port=p["port"]),
        "unix socket": make_conninfo(**base, host=p["socket_dir"], port=p["port"]),
        "url with parameters": (
            f"postgresql://{auth}@127.0.0.1:{p['port']}/{quote(dbname)}"
            "?sslmode=prefer&application_name=nightly-fix&connect_timeout=7&options=-c%20search_path%3Dpublic"
        ),
    }


@pytest.fixture(scope="module")
def routes(pg: PgServer, prod_db: str) -> dict[str, str]:
    return _routes(pg, prod_db)


@pytest.fixture
def targets(routes: dict[str, str]) -> dict[str, Target]:
    return {
        "prod": Target(name="prod", dsn=routes["127.0.0.1"], role=TargetRole.PRODUCTION),
        "scratch": Target(name="scratch", dsn=routes["localhost"], role=TargetRole.REPLICA),
    }


@pytest.fixture(scope="module")
def other_cluster(pg: PgServer, prod_db: str) -> Iterator[tuple[ThrowawayCluster, str]]:
    """A second cluster holding a pg_dump / pg_restore copy of production: (cluster, the copy's DSN)."""
    cluster = ThrowawayCluster().start()
    try:
        dump = cluster.root / "prod.dump"
        subprocess.run(
            [str(find_pg_bindir("pg_dump") / "pg_dump"), "-Fc", "-f", str(dump), "-d", pg.dsn_for(prod_db)], check=True
        )
        with psycopg.connect(cluster.dsn, autocommit=True) as conn:
            conn.execute("CREATE DATABASE restored")
        copy_dsn = cluster.dsn.rsplit("/", 1)[0] + "/restored"
        subprocess.run(
            [str(find_pg_bindir("pg_restore") / "pg_restore"), "--no-owner", "-d", copy_dsn, str(dump)],
            check=True,
        )
        yield cluster, copy_dsn
    finally:
        cluster.stop()


def _env(**extra: str) -> dict[str, str]:
    """A small environment for `rewind` as a process: no stray DSNs from the test runner's own."""
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "REWIND_STATE_DIR") if k in os.environ}
    env["PYTHONPATH"] = str(REPO)
    env["REWIND_DATABASE_URL"] = "sqlite:///:memory:"
    env.update(extra)
    return env


def _rewind(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args], env=env, capture_output=True, text=True, timeout=120, cwd=REPO
    )


def _targets_json(targets: dict[str, Target]) -> str:
    return json.dumps({name: t.model_dump(exclude={"name"}, exclude_none=True) for name, t in targets.items()})


# --- recognising production -----------------------------------------------------------------------------------


def test_production_is_recognised_however_it_is_reached(routes: dict[str, str], targets: dict[str, Target]) -> None:
    prints = {how: fingerprint(dsn) for how, dsn in routes.items()}
    assert len(set(prints.values())) == 1, prints
    for how, dsn in routes.items():
        verdict = find_production(dsn, targets)
        assert (verdict.status, verdict.target) == (FenceStatus.PRODUCTION, "prod"), how
        assert verdict.exit_code == 3


def test_a_pinned_fingerprint_needs_no_production_credentials(routes: dict[str, str]) -> None:
    pinned = str(fingerprint(routes["unix socket"]))
    targets = {"prod": Target(name="prod", role=TargetRole.PRODUCTION, fingerprint=pinned)}
    for how, dsn in routes.items():
        assert find_production(dsn, targets).status is FenceStatus.PRODUCTION, how
    assert Fingerprint.parse(pinned) == fingerprint(routes["localhost"])


def test_fingerprints_are_learned_once_and_cached(targets: dict[str, Target], state_dir: Path) -> None:
    first = production_fingerprints(targets)
    assert [(p.target, p.source) for p in first] == [("prod", "connected")]
    again = production_fingerprints(targets, connect=False)
    assert [(p.target, p.source) for p in again] == [("prod", "learned")]
    assert again[0].fingerprint == first[0].fingerprint
    cache = (state_dir / "fence.json").read_text()
    assert "127.0.0.1" not in cache  # a digest of the DSN, never the DSN


def test_a_restored_copy_in_another_cluster_is_not_production(
    other_cluster: tuple[ThrowawayCluster, str], targets: dict[str, Target]
) -> None:
    _, copy_dsn = other_cluster
    with psycopg.connect(copy_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM orders").fetchone()[0] == 50
    verdict = find_production(copy_dsn, targets)
    assert verdict.status is FenceStatus.NOT_PRODUCTION and verdict.exit_code == 0
    assert refuse_production(copy_dsn, targets).status is FenceStatus.NOT_PRODUCTION


def test_a_copy_in_another_database_of_the_same_cluster_is_not_production(
    pg: PgServer, prod_db: str, targets: dict[str, Target]
) -> None:
    copy = f"rw_copy_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg.admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(copy), sql.Identifier(prod_db)))
    try:
        copy_dsn = pg.dsn_for(copy)
        assert fingerprint(copy_dsn).system_identifier == fingerprint(pg.dsn_for(prod_db)).system_identifier
        assert find_production(copy_dsn, targets).status is FenceStatus.NOT_PRODUCTION
    finally:
        pg.drop_database(copy)


def test_a_standby_is_a_replica_of_production(other_cluster: tuple[ThrowawayCluster, str], tmp_path: Path) -> None:
    primary = other_cluster[0]
    standby = ThrowawayCluster()
    try:
        with psycopg.connect(primary.dsn, autocommit=True) as conn:
            conn.execute("CREATE DATABASE shop")
        standby.root.mkdir(parents=True, exist_ok=True)
        _chown_tree(standby.root, standby._ids)
        standby._run(
            "pg_basebackup", "-D", str(standby.datadir), "-R", "-X", "stream", "--checkpoint=fast", "-d", primary.dsn
        )
        standby.start()
        shop = {"primary": primary.dsn.rsplit("/", 1)[0] + "/shop", "standby": standby.dsn.rsplit("/", 1)[0] + "/shop"}
        targets = {"shop": Target(name="shop", dsn=shop["primary"], role=TargetRole.PRODUCTION)}
        verdict = find_production(shop["standby"], targets)
        assert (verdict.status, verdict.target, verdict.exit_code) == (FenceStatus.REPLICA_OF_PRODUCTION, "shop", 4)
        with pytest.raises(ProductionRefused, match="standby"):
            refuse_production(shop["standby"], targets)
        assert refuse_production(shop["standby"], targets, allow_replica=True).target == "shop"
        env = _env(REWIND_TARGETS=_targets_json(targets), REWIND_STATE_DIR=str(tmp_path / "s"))
        assert _rewind("fence", "check", shop["standby"], env=env).returncode == 4
        assert _rewind("fence", "check", "--allow-replica", shop["standby"], env=env).returncode == 0
        # Promoted, a physical copy keeps the identity, so the fence errs on the safe side and calls it production.
        with psycopg.connect(shop["standby"], autocommit=True) as conn:
            conn.execute("SELECT pg_promote(true, 30)")
        assert find_production(shop["standby"], targets).status is FenceStatus.PRODUCTION
    finally:
        standby.stop()


def test_an_unknown_production_fingerprint_fails_closed(routes: dict[str, str]) -> None:
    targets = {"prod": Target(name="prod", dsn="postgresql://u:hunter2@127.0.0.1:1/prod", role=TargetRole.PRODUCTION)}
    with pytest.raises(FenceError, match="Pin it") as refused:
        find_production(routes["localhost"], targets)
    assert "hunter2" not in str(refused.value)


# --- rewind fence check and the one-line pre-flight -----------------------------------------------------------


def test_fence_check_exit_codes_and_json(
    routes: dict[str, str],
    targets: dict[str, Target],
    other_cluster: tuple[ThrowawayCluster, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("REWIND_TARGETS", _targets_json(targets))
    assert main(["fence", "check", routes["unix socket"]]) == 3
    assert capsys.readouterr().out.startswith("production (prod):")
    assert main(["fence", "check", "--json", other_cluster[1]]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["status"], shown["target"], shown["exit_code"]) == ("not production", None, 0)
    assert main(["fence", "check", "postgresql://u:hunter2@127.0.0.1:1/x"]) == 1
    assert "hunter2" not in capsys.readouterr().err
    assert main(["fence", "check", "--json", "postgresql://u:hunter2@127.0.0.1:1/x"]) == 1
    out = capsys.readouterr().out
    assert json.loads(out)["status"] == "unknown" and "hunter2" not in out


def test_refuse_production_reads_the_configured_targets(
    routes: dict[str, str], targets: dict[str, Target], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REWIND_TARGETS", _targets_json(targets))
    with pytest.raises(ProductionRefused, match="production target 'prod'") as refused:
        refuse_production(routes["url with parameters"])
    assert "replica" in str(refused.value)  # it says what to do instead


def test_the_shell_one_liner_stops_a_script(
    routes: dict[str, str], targets: dict[str, Target], other_cluster: tuple[ThrowawayCluster, str], tmp_path: Path
) -> None:
    marker = tmp_path / "wrote"
    script = tmp_path / "fix.sh"
    script.write_text(f'#!/bin/sh\n{sys.executable} -m bot.cli fence check "$DATABASE_URL" || exit 1\ntouch {marker}\n')
    env = _env(REWIND_TARGETS=_targets_json(targets))
    refused = subprocess.run(["sh", str(script)], env={**env, "DATABASE_URL": routes["localhost"]}, cwd=REPO)
    assert refused.returncode == 1 and not marker.exists()
    allowed = subprocess.run(["sh", str(script)], env={**env, "DATABASE_URL": other_cluster[1]}, cwd=REPO)
    assert allowed.returncode == 0 and marker.exists()


# --- rewind exec ----------------------------------------------------------------------------------------------


def _writer(marker: Path, code: int = 0) -> list[str]:
    """A command that writes a marker file (and its environment into it), then exits with `code`."""
    program = f"import json, os, sys; open({str(marker)!r}, 'w').write(json.dumps(dict(os.environ))); sys.exit({code})"
    return [sys.executable, "-c", program]


@pytest.mark.parametrize("route", ["127.0.0.1", "localhost", "unix socket", "url with parameters"])
def test_exec_refuses_and_never_starts_the_command(
    route: str, routes: dict[str, str], targets: dict[str, Target], tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    env = _env(REWIND_TARGETS=_targets_json(targets), DATABASE_URL=routes[route])
    done = _rewind("exec", "--", *_writer(marker), env=env)
    assert done.returncode == 3
    assert "DATABASE_URL" in done.stderr and "production target 'prod'" in done.stderr
    assert "--request" in done.stderr  # the way to ask for approval
    assert not marker.exists()


def test_exec_runs_a_safe_command_untouched_and_passes_its_exit_code(
    targets: dict[str, Target], other_cluster: tuple[ThrowawayCluster, str], tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    env = _env(REWIND_TARGETS=_targets_json(targets), DATABASE_URL=other_cluster[1])
    done = _rewind("exec", "--", *_writer(marker, code=7), env=env)
    assert done.returncode == 7, done.stderr
    assert json.loads(marker.read_text()) == env  # nothing added to, or taken from, its environment


def test_exec_checks_only_the_variables_named(
    routes: dict[str, str], targets: dict[str, Target], other_cluster: tuple[ThrowawayCluster, str], tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    env = _env(REWIND_TARGETS=_targets_json(targets), LEGACY_URL=routes["localhost"], APP_DB=f"{other_cluster[1]}")
    assert _rewind("exec", "--env", "APP_DB", "--", *_writer(marker), env=env).returncode == 0
    assert marker.exists()
    marker.unlink()
    done = _rewind("exec", "--env", "LEGACY_URL", "--", *_writer(marker), env=env)
    assert done.returncode == 3 and "LEGACY_URL" in done.stderr and not marker.exists()
    # Asking for approval with no incident channel to ask in says where to ask, and still starts nothing.
    done = _rewind("exec", "--request", "--", *_writer(marker), env=env)
    assert done.returncode == 1 and "no open incident to ask in" in done.stderr and not marker.exists()


def test_exec_checks_a_libpq_keyword_dsn_and_the_libpq_environment(
    pg: PgServer, prod_db: str, targets: dict[str, Target], tmp_path: Path
) -> None:
    p = _server_params(pg, prod_db)
    marker = tmp_path / "marker"
    keyword = f"host={p['socket_dir']} port={p['port']} dbname={prod_db} user={p.get('user', 'postgres')}"
    base = _env(REWIND_TARGETS=_targets_json(targets))
    if p.get("password"):
        base["PGPASSWORD"] = p["password"]
    done = _rewind("exec", "--", *_writer(marker), env={**base, "CONN": keyword})
    assert done.returncode == 3 and "CONN" in done.stderr
    libpq = {"PGHOST": "127.0.0.1", "PGPORT": p["port"], "PGDATABASE": prod_db, "PGUSER": p.get("user", "postgres")}
    done = _rewind("exec", "--", *_writer(marker), env={**base, **libpq})
    assert done.returncode == 3 and "PGHOST" in done.stderr
    assert not marker.exists()


def test_dsn_env_vars_finds_dsns_and_nothing_else() -> None:
    environ = {
        "DATABASE_URL": "postgres://u:p@db.internal/app",
        "SQLALCHEMY_URL": "postgresql+psycopg://u:p@db.internal:6432/app",
        "PG_CONN": "host=db.internal dbname=app user=u",
        "LOCAL_ONLY": "dbname=app",
        "LS_COLORS": "rs=0:di=01;34:ln=01;36",
        "REDIS_URL": "redis://cache:6379/0",
        "QUERY": "a=1&b=2",
    }
    found = dsn_env_vars(environ)
    assert sorted(found) == ["DATABASE_URL", "PG_CONN", "SQLALCHEMY_URL"]
    assert found["SQLALCHEMY_URL"] == "postgresql://u:p@db.internal:6432/app"
    assert dsn_env_vars(environ, only=["LOCAL_ONLY"]) == {"LOCAL_ONLY": "dbname=app"}
    with pytest.raises(FenceError, match="not set"):
        dsn_env_vars(environ, only=["MISSING"])
    with pytest.raises(FenceError, match="not a Postgres DSN"):
        dsn_env_vars(environ, only=["REDIS_URL"])


def test_preflight_names_each_variable_that_reaches_production(
    routes: dict[str, str], targets: dict[str, Target], other_cluster: tuple[ThrowawayCluster, str]
) -> None:
    environ = {"A_URL": routes["localhost"], "B_URL": other_cluster[1], "C_URL": routes["url with parameters"]}
    hits = preflight(environ, targets)
    assert [(h.var, h.status, h.target) for h in hits] == [
        ("A_URL", FenceStatus.PRODUCTION, "prod"),
        ("C_URL", FenceStatus.PRODUCTION, "prod"),
    ]
    assert preflight(environ, targets, only=["B_URL"]) == []
    unreachable = preflight({"OLD_URL": "postgresql://u:hunter2@127.0.0.1:1/x"}, targets)
    assert unreachable[0].status is None and "hunter2" not in unreachable[0].model_dump_json()


def test_script_sha256_names_the_script_a_command_runs(tmp_path: Path) -> None:
    script = tmp_path / "fix.py"
    script.write_text("print('fix')\n")
    sql_file = tmp_path / "fix.sql"
    sql_file.write_text("DELETE FROM orders;\n")
    py_hash = hashlib.sha256(script.read_bytes()).hexdigest()
    assert script_sha256(["python3", "-u", str(script), "--dry-run"]) == py_hash
    assert script_sha256(["env", "A=1", "python", str(script)]) == py_hash
    assert script_sha256(["psql", "-X", "-f", str(sql_file)]) == hashlib.sha256(sql_file.read_bytes()).hexdigest()
    assert script_sha256(["psql", f"--file={sql_file}"]) == hashlib.sha256(sql_file.read_bytes()).hexdigest()
    assert script_sha256(["python", "-c", "print(1)"]) is None
    assert script_sha256(["ls", "-l"]) is None
    assert script_sha256(["shred", str(script)]) is None  # a program given a file is not a script run
    shell = tmp_path / "fix.sh"
    shell.write_text("#!/bin/sh\necho fix\n")
    assert script_sha256([str(shell), "--apply"]) == hashlib.sha256(shell.read_bytes()).hexdigest()


# --- read-only by privilege -----------------------------------------------------------------------------------


@pytest.fixture
def logins(pg: PgServer, prod_db: str) -> Iterator[dict[str, str]]:
    """A read-only login made from `rewind fence role` output, and a login that may write `orders`: name -> DSN."""
    suffix = uuid.uuid4().hex[:8]
    reader, writer = f"rw_reader_{suffix}", f"rw_writer_{suffix}"
    with psycopg.connect(pg.dsn_for(prod_db), autocommit=True) as conn:
        conn.execute(read_only_role_sql(reader, prod_db))  # the printed SQL, applied as printed
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(writer)))
        conn.execute(sql.SQL("GRANT SELECT, INSERT ON orders TO {}").format(sql.Identifier(writer)))
        for role in (reader, writer):
            conn.execute(sql.SQL("ALTER ROLE {} PASSWORD 'fence-pw'").format(sql.Identifier(role)))
    params = conninfo_to_dict(pg.dsn_for(prod_db))
    yield {role: make_conninfo(**{**params, "user": role, "password": "fence-pw"}) for role in (reader, writer)}
    with psycopg.connect(pg.dsn_for(prod_db), autocommit=True) as conn:
        for role in (reader, writer):
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_fence_role_makes_a_login_that_cannot_write(logins: dict[str, str]) -> None:
    reader_dsn = next(dsn for role, dsn in logins.items() if role.startswith("rw_reader"))
    target = Target(name="backup", dsn=reader_dsn, role=TargetRole.BACKUP)
    assert login_can_write(target) is False
    check = write_check(target)
    assert check.default_read_only is True and check.reasons == []
    with psycopg.connect(reader_dsn, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM orders").fetchone()[0] == 50  # it reads every table
        conn.execute("SET default_transaction_read_only = off")  # the setting is one layer; privileges are another
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("INSERT INTO orders VALUES (999, 'nope')")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("CREATE TABLE sneaky (id int)")


def test_targets_check_reports_which_logins_can_write(
    logins: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    reader_dsn, writer_dsn = sorted(logins.values(), key=lambda dsn: "rw_writer" in dsn)
    targets = {
        "readonly": Target(name="readonly", dsn=reader_dsn, role=TargetRole.REPLICA),
        "leaky": Target(name="leaky", dsn=writer_dsn, role=TargetRole.BACKUP),
    }
    check = write_check(targets["leaky"])
    assert check.can_write is True and any("1 table(s)" in reason for reason in check.reasons)
    warning = write_warning(check)
    assert warning is not None and "'leaky'" in warning and "rewind fence role" in warning
    monkeypatch.setenv("REWIND_TARGETS", _targets_json(targets))
    assert main(["targets", "--check"]) == 1  # a read-only target can write
    out = capsys.readouterr().out
    assert "cannot write" in out.split("leaky")[0]
    assert "warning: backup target 'leaky'" in out
    assert "fence-pw" not in out
    assert main(["targets", "--check", "--json"]) == 1
    shown = {item["name"]: item for item in json.loads(capsys.readouterr().out)}
    assert shown["readonly"]["write_check"]["can_write"] is False
    assert shown["leaky"]["write_check"]["can_write"] is True and shown["leaky"]["warnings"]


def test_fence_role_prints_the_sql(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fence", "role", "rewind ro", "--database", "app"]) == 0
    out = capsys.readouterr().out
    assert 'GRANT pg_read_all_data TO "rewind ro";' in out
    assert 'ALTER ROLE "rewind ro" SET default_transaction_read_only = on;' in out
    assert 'GRANT CONNECT ON DATABASE "app" TO "rewind ro";' in out


def test_a_pin_that_no_longer_matches_is_reported(
    routes: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = fingerprint(routes["localhost"])
    stale = Fingerprint(system_identifier="1", database=real.database, database_oid=real.database_oid)
    targets = {"prod": Target(name="prod", dsn=routes["localhost"], role=TargetRole.PRODUCTION, fingerprint=str(stale))}
    monkeypatch.setenv("REWIND_TARGETS", _targets_json(targets))
    assert main(["targets", "--check"]) == 1
    assert "is not the server's" in capsys.readouterr().out


def test_a_connection_rewind_already_holds_teaches_the_fingerprint(routes: dict[str, str]) -> None:
    target = Target(name="prod", dsn=routes["localhost"], role=TargetRole.PRODUCTION)
    with psycopg.connect(routes["localhost"]) as conn:
        conn.execute("SELECT count(*) FROM orders")  # in the middle of the caller's transaction
        learned = learn_from_connection(target, conn)
        assert conn.execute("SELECT count(*) FROM orders").fetchone()[0] == 50  # still usable
    assert learned == fingerprint(routes["127.0.0.1"])
    assert [(p.source, p.fingerprint) for p in production_fingerprints({"prod": target}, connect=False)] == [
        ("learned", learned)
    ]


def test_the_configured_dsn_of_production_is_production_even_unreachable() -> None:
    dsn = "postgresql://u:hunter2@127.0.0.1:1/prod"
    targets = {"prod": Target(name="prod", dsn=dsn, role=TargetRole.PRODUCTION)}
    verdict = find_production(dsn, targets)
    assert (verdict.status, verdict.target) == (FenceStatus.PRODUCTION, "prod")
    assert [h.var for h in preflight({"DATABASE_URL": dsn}, targets)] == ["DATABASE_URL"]


def test_an_old_learned_fingerprint_is_checked_again(routes: dict[str, str], state_dir: Path) -> None:
    # Production moved to a new cluster behind the same DSN: what was learned an hour ago no longer describes it.
    target = Target(name="prod", dsn=routes["127.0.0.1"], role=TargetRole.PRODUCTION)
    real = fingerprint(routes["127.0.0.1"])
    remember(target, Fingerprint(system_identifier="1", database="old", database_oid=1))
    cache = json.loads((state_dir / "fence.json").read_text())
    cache["prod"]["learned_at"] = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    (state_dir / "fence.json").write_text(json.dumps(cache))
    assert find_production(routes["localhost"], {"prod": target}).status is FenceStatus.PRODUCTION
    assert production_fingerprints({"prod": target}, connect=False)[0].fingerprint == real


def test_a_malformed_pin_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="system_identifier/database/oid"):
        Target(name="prod", role=TargetRole.PRODUCTION, fingerprint="db-primary.internal")


def test_exec_request_hands_the_command_to_the_approval_hook(
    routes: dict[str, str], targets: dict[str, Target], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "marker"
    asked: list[tuple[list[str], list[str]]] = []

    def request(argv: list[str], hits: list[Hit]) -> int:
        asked.append((argv, [hit.var for hit in hits]))
        return 5

    parser = argparse.ArgumentParser()
    register_restore(parser.add_subparsers(), lambda: targets, request=request)
    monkeypatch.setenv("DATABASE_URL", routes["unix socket"])
    args = parser.parse_args(["exec", "--env", "DATABASE_URL", "--request", "--", *_writer(marker)])
    assert args.func(args) == 5
    assert asked == [(_writer(marker), ["DATABASE_URL"])]
    assert not marker.exists()
