"""The fence: recognise production by identity, and refuse to start what would reach it.

Hostnames, IPs, poolers and DNS aliases all differ between DSNs that reach the same database, so a database is
recognised by what the server says about itself: the cluster's `system_identifier` (from `pg_control_system()`)
plus the database's name and OID. A `pg_dump` reload, or a copy in another database of the same cluster, has a
different fingerprint. A physical standby shares its primary's, and is told apart by being in recovery.

A DSN matches a production target when the system identifier is the same and either the OID or the name is: a
renamed production database keeps its OID, and one dropped and recreated under its old name (a restore in place)
is production again. Both mistakes the match can make are on the side of refusing.

Production fingerprints come from the targets' pinned `fingerprint`, else from a small cache in the state directory
(learned whenever the fence connects to a production target that has a DSN), else by connecting now. A target whose
fingerprint cannot be had makes every check fail closed: nothing is called safe that might be production.
"""

import enum
import hashlib
import json
import os
import re
import shlex
import shutil
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from pydantic import BaseModel, ConfigDict

from restore.errors import RewindError
from restore.targets import Target, TargetRole, mask_dsn, targets_from_environ

CONNECT_TIMEOUT_S = 5
EXIT_NOT_PRODUCTION = 0
EXIT_PRODUCTION = 3
EXIT_REPLICA_OF_PRODUCTION = 4
# A learned production fingerprint younger than this is trusted without reconnecting.
CACHE_FRESH = timedelta(minutes=10)

_URL_SCHEMES = ("postgres://", "postgresql://")
# The libpq environment: a command run with these set reaches a server without any DSN in sight.
_LIBPQ_ENV = {
    "PGHOST": "host",
    "PGHOSTADDR": "hostaddr",
    "PGPORT": "port",
    "PGDATABASE": "dbname",
    "PGUSER": "user",
    "PGPASSWORD": "password",
    "PGSERVICE": "service",
    "PGSSLMODE": "sslmode",
}
_LIBPQ_ENV_TRIGGERS = ("PGHOST", "PGHOSTADDR", "PGSERVICE", "PGDATABASE")


class FenceError(RewindError):
    """The fence cannot tell whether a DSN reaches production (so it refuses)."""


class ProductionRefused(RewindError):
    """A DSN reaches production where only approved proposals may."""


class Fingerprint(BaseModel):
    """A database's identity: its cluster's system identifier, its name and OID; `in_recovery` for a standby.

    Its text form, `system_identifier/database/oid`, is what a targets file pins as `fingerprint = "..."`.
    """

    model_config = ConfigDict(frozen=True)

    system_identifier: str
    database: str
    database_oid: int
    in_recovery: bool = False

    def __str__(self) -> str:
        return f"{self.system_identifier}/{self.database}/{self.database_oid}"

    @classmethod
    def parse(cls, text: str) -> "Fingerprint":
        """The pinned form `system_identifier/database/oid` (a database name may itself hold slashes)."""
        head, _, rest = text.strip().partition("/")
        name, _, oid = rest.rpartition("/")
        if not head.isdigit() or not oid.isdigit() or not name:
            raise FenceError(
                f"Fingerprint {text!r} is not system_identifier/database/oid; "
                "copy it from `rewind fence learn` or `rewind fence check DSN`."
            )
        return cls(system_identifier=head, database=name, database_oid=int(oid))

    def same_database(self, other: "Fingerprint") -> bool:
        if self.system_identifier != other.system_identifier:
            return False
        return self.database_oid == other.database_oid or self.database == other.database


class FenceStatus(enum.StrEnum):
    NOT_PRODUCTION = "not production"
    PRODUCTION = "production"
    REPLICA_OF_PRODUCTION = "replica of production"


class FenceVerdict(BaseModel):
    """What a DSN reaches: `target` names the production target when it is production or a standby of it."""

    status: FenceStatus
    target: str | None
    fingerprint: Fingerprint | None
    reason: str

    @property
    def reaches_production(self) -> bool:
        return self.status is not FenceStatus.NOT_PRODUCTION

    @property
    def exit_code(self) -> int:
        return {
            FenceStatus.NOT_PRODUCTION: EXIT_NOT_PRODUCTION,
            FenceStatus.PRODUCTION: EXIT_PRODUCTION,
            FenceStatus.REPLICA_OF_PRODUCTION: EXIT_REPLICA_OF_PRODUCTION,
        }[self.status]


class Hit(BaseModel):
    """An environment variable that stops a command: it reaches production, or the fence could not tell."""

    var: str
    dsn: str  # masked
    status: FenceStatus | None  # None: not checked (no connection), which refuses too
    target: str | None
    reason: str


# --- fingerprints --------------------------------------------------------------------------------------------------


def fingerprint(dsn: str, *, timeout_s: float = CONNECT_TIMEOUT_S) -> Fingerprint:
    """Connect to `dsn` and read its identity; FenceError when it cannot be read (the message says why)."""
    try:
        with psycopg.connect(dsn, connect_timeout=max(1, int(timeout_s)), autocommit=True) as conn:
            return _read_fingerprint(conn)
    except psycopg.errors.InsufficientPrivilege as exc:
        raise FenceError(
            f"{mask_dsn(dsn)}: this login may not read the system identifier ({_message(exc)}). "
            "Ask a superuser to run: GRANT EXECUTE ON FUNCTION pg_control_system() TO <login>."
        ) from None
    except psycopg.Error as exc:
        raise FenceError(f"Cannot connect to {mask_dsn(dsn)} to read its fingerprint: {_message(exc)}") from None


_FINGERPRINT_SQL = (
    "SELECT (SELECT system_identifier FROM pg_control_system())::text, d.datname, d.oid::bigint, "
    "pg_is_in_recovery() FROM pg_database d WHERE d.datname = current_database() AND %s"
)


def _read_fingerprint(conn: psycopg.Connection) -> Fingerprint:
    # Parameters force the extended query protocol: one call, one statement.
    row = conn.execute(_FINGERPRINT_SQL, [True]).fetchone()
    if row is None:
        raise FenceError("The server did not describe its current database.")
    return Fingerprint(system_identifier=row[0], database=row[1], database_oid=row[2], in_recovery=row[3])


def _message(exc: psycopg.Error) -> str:
    diag = getattr(exc, "diag", None)
    text = ((diag.message_primary if diag is not None else None) or str(exc)).strip()
    return mask_dsn(text.splitlines()[0] if text else type(exc).__name__)


# --- the cache of learned production fingerprints -----------------------------------------------------------------


def state_root() -> Path:
    base = os.environ.get("REWIND_STATE_DIR")
    return Path(base) if base else Path.home() / ".local" / "share" / "rewind"


def cache_path() -> Path:
    return state_root() / "fence.json"


def _dsn_digest(dsn: str) -> str:
    # The cache holds a digest, never the DSN: it sits in a home directory and may carry a password.
    return hashlib.sha256(dsn.encode()).hexdigest()


def _read_cache() -> dict[str, dict[str, str]]:
    try:
        raw = json.loads(cache_path().read_text())
    except (OSError, ValueError):
        return {}
    return raw if isinstance(raw, dict) else {}


def remember(target: Target, print_: Fingerprint) -> None:
    """Record a production target's fingerprint, learned by connecting to it (keyed by name and DSN digest)."""
    if target.role is not TargetRole.PRODUCTION or not target.dsn:
        return
    cache = _read_cache()
    cache[target.name] = {
        "dsn_sha256": _dsn_digest(target.dsn),
        "fingerprint": str(print_),
        "learned_at": datetime.now(UTC).isoformat(),
    }
    path = cache_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(cache, indent=2, sort_keys=True))
        os.replace(tmp, path)
    except OSError:
        # A read-only home only costs a reconnection next time.
        return


def learned(target: Target, *, max_age: timedelta | None = None) -> Fingerprint | None:
    """The cached fingerprint of a production target, if learned with its current DSN (and within `max_age`)."""
    entry = _read_cache().get(target.name)
    if not entry or not target.dsn or entry.get("dsn_sha256") != _dsn_digest(target.dsn):
        return None
    try:
        if max_age is not None and datetime.now(UTC) - datetime.fromisoformat(entry["learned_at"]) > max_age:
            return None
        return Fingerprint.parse(entry["fingerprint"])
    except (FenceError, KeyError, ValueError, TypeError):
        return None


def learn_from_connection(target: Target, conn: psycopg.Connection) -> Fingerprint | None:
    """Cache a production target's fingerprint over a connection Rewind already holds (apply, diff, journal).

    Best effort and side-effect free on the server: a failure to read or to cache is ignored, never raised into the
    work that opened the connection.
    """
    if target.role is not TargetRole.PRODUCTION:
        return None
    try:
        # A savepoint inside the caller's transaction (or a transaction of its own): a refusal here aborts nothing.
        with conn.transaction(), conn.cursor() as cur:
            row = cur.execute(_FINGERPRINT_SQL, [True]).fetchone()
    except psycopg.Error:
        return None
    if row is None:
        return None
    print_ = Fingerprint(system_identifier=row[0], database=row[1], database_oid=row[2], in_recovery=row[3])
    remember(target, print_)
    return print_


def learn(target: Target) -> Fingerprint:
    """Connect to a production target, read its fingerprint and cache it."""
    print_ = fingerprint(target.require_dsn())
    remember(target, print_)
    return print_


class ProductionPrint(BaseModel):
    target: str
    fingerprint: Fingerprint | None
    source: str  # pinned, learned, connected, or unknown
    problem: str | None = None


def production_fingerprints(targets: Mapping[str, Target], *, connect: bool = True) -> list[ProductionPrint]:
    """Every production target's fingerprint: pinned; else learned in the last CACHE_FRESH; else (with `connect`)
    read now; else learned earlier. A recent reading is preferred because production can move to a new cluster
    behind the same DSN, and a stale identity would wave the new one through."""
    found: list[ProductionPrint] = []
    for target in targets.values():
        if target.role is not TargetRole.PRODUCTION:
            continue
        if target.fingerprint:
            pinned = Fingerprint.parse(target.fingerprint)
            found.append(ProductionPrint(target=target.name, fingerprint=pinned, source="pinned"))
            continue
        fresh = learned(target, max_age=None if not connect else CACHE_FRESH)
        if fresh is not None:
            found.append(ProductionPrint(target=target.name, fingerprint=fresh, source="learned"))
            continue
        problem = "not learned yet"
        if connect and target.dsn:
            try:
                found.append(ProductionPrint(target=target.name, fingerprint=learn(target), source="connected"))
                continue
            except FenceError as exc:
                problem = str(exc)
        older = learned(target)
        if older is not None:
            found.append(ProductionPrint(target=target.name, fingerprint=older, source="learned", problem=problem))
            continue
        found.append(ProductionPrint(target=target.name, fingerprint=None, source="unknown", problem=problem))
    return found


# --- verdicts -----------------------------------------------------------------------------------------------------


def judge(print_: Fingerprint, production: Iterable[ProductionPrint]) -> FenceVerdict:
    """The verdict for a fingerprint against known production fingerprints; FenceError if one is unknown."""
    production = list(production)
    for known in production:
        if known.fingerprint is not None and print_.same_database(known.fingerprint):
            if print_.in_recovery:
                return FenceVerdict(
                    status=FenceStatus.REPLICA_OF_PRODUCTION,
                    target=known.target,
                    fingerprint=print_,
                    reason=f"a standby (in recovery) of production target {known.target!r}",
                )
            return FenceVerdict(
                status=FenceStatus.PRODUCTION,
                target=known.target,
                fingerprint=print_,
                reason=f"production target {known.target!r} ({known.source} fingerprint {known.fingerprint})",
            )
    unknown = [known for known in production if known.fingerprint is None]
    if unknown:
        names = ", ".join(f"{known.target!r} ({known.problem})" for known in unknown)
        raise FenceError(
            f"Cannot tell whether this is production: the fingerprint of {names} is unknown. Pin it in the targets "
            'file (fingerprint = "..." from `rewind fence learn` run where its DSN works) or make it reachable.'
        )
    return FenceVerdict(
        status=FenceStatus.NOT_PRODUCTION,
        target=None,
        fingerprint=print_,
        reason=f"database {print_.database!r} of cluster {print_.system_identifier} is no production target",
    )


def find_production(
    dsn: str, targets: Mapping[str, Target], *, production: Sequence[ProductionPrint] | None = None
) -> FenceVerdict:
    """Whether `dsn` reaches a production target (or a standby of one). Connects to `dsn`; raises FenceError."""
    named = configured_production(dsn, targets)
    if named is not None:
        return named
    known = production_fingerprints(targets) if production is None else production
    return judge(fingerprint(dsn), known)


def configured_production(dsn: str, targets: Mapping[str, Target]) -> FenceVerdict | None:
    """The very DSN of a production target is production, whatever server answers it (or none does)."""
    for target in targets.values():
        if target.role is TargetRole.PRODUCTION and target.dsn and target.dsn.strip() == dsn.strip():
            return FenceVerdict(
                status=FenceStatus.PRODUCTION,
                target=target.name,
                fingerprint=None,
                reason=f"production target {target.name!r} (its configured DSN)",
            )
    return None


def refuse_production(
    dsn: str, targets: Mapping[str, Target] | None = None, *, allow_replica: bool = False
) -> FenceVerdict:
    """A script's one-line pre-flight: raise ProductionRefused if `dsn` reaches production, else the verdict.

    Targets default to REWIND_TARGETS / REWIND_TARGETS_FILE. A standby of production is refused too unless
    `allow_replica` (it cannot write, but a failover would make it the primary mid-run).
    """
    verdict = find_production(dsn, targets_from_environ() if targets is None else targets)
    if verdict.status is FenceStatus.PRODUCTION or (verdict.reaches_production and not allow_replica):
        raise ProductionRefused(
            f"Refused: {mask_dsn(dsn)} reaches {verdict.reason}. Point the script at a replica or a restored copy "
            "(rewind replica up DUMP), or get its SQL approved as a proposal."
        )
    return verdict


# --- the environment of a command ---------------------------------------------------------------------------------


def _as_libpq_url(value: str) -> str | None:
    """A postgres URL libpq accepts, from `postgres://`, `postgresql://` or SQLAlchemy's `postgresql+driver://`."""
    lowered = value.strip().lower()
    if lowered.startswith(_URL_SCHEMES):
        return value.strip()
    scheme, sep, rest = value.strip().partition("://")
    if sep and scheme.lower().split("+")[0] in ("postgres", "postgresql") and "+" in scheme:
        return f"postgresql://{rest}"
    return None


def _as_keyword_dsn(value: str, *, need_host: bool) -> str | None:
    if "=" not in value:
        return None
    try:
        params = conninfo_to_dict(value)
    except psycopg.Error:
        return None
    if need_host and not (params.get("host") or params.get("hostaddr") or params.get("service")):
        return None
    return value


def dsn_env_vars(environ: Mapping[str, str], only: Sequence[str] | None = None) -> dict[str, str]:
    """The variables in `environ` that hold a Postgres DSN, with a libpq DSN for each.

    Without `only`: URLs (`postgres://`, `postgresql://`, `postgresql+driver://`), libpq `key=value` strings with a
    host, and the libpq environment itself (PGHOST, PGSERVICE, ...) under the name `PGHOST` etc. With `only`, just
    those variables, any libpq `key=value` accepted, and a FenceError for one that is unset or holds no DSN.
    """
    found: dict[str, str] = {}
    names = list(only) if only is not None else sorted(environ)
    for var in names:
        if var not in environ:
            if only is not None:
                raise FenceError(f"--env {var}: the variable is not set. Name a variable that holds the DSN.")
            continue
        value = environ[var]
        dsn = _as_libpq_url(value) or _as_keyword_dsn(value, need_host=only is None)
        if dsn is None and only is not None and var in _LIBPQ_ENV:
            dsn = _libpq_env_dsn(environ)
        if dsn is not None:
            found[var] = dsn
        elif only is not None:
            raise FenceError(f"--env {var}: the value is not a Postgres DSN (postgresql://... or host=... dbname=...).")
    if only is None:
        trigger = next((var for var in _LIBPQ_ENV_TRIGGERS if environ.get(var)), None)
        if trigger is not None:
            found[trigger] = _libpq_env_dsn(environ)
    return found


def _libpq_env_dsn(environ: Mapping[str, str]) -> str:
    return make_conninfo(**{key: environ[var] for var, key in _LIBPQ_ENV.items() if environ.get(var)})


def preflight(
    environ: Mapping[str, str],
    targets: Mapping[str, Target],
    only: Sequence[str] | None = None,
    *,
    allow_replica: bool = False,
) -> list[Hit]:
    """The variables that must stop a command: each reaches production (or, unless allowed, a standby of it),
    or could not be checked. An empty list means the command may run."""
    hits: list[Hit] = []
    candidates = dsn_env_vars(environ, only)
    if not candidates:
        return hits
    production = production_fingerprints(targets)
    for var, dsn in candidates.items():
        shown = mask_dsn(environ.get(var, dsn))
        try:
            verdict = find_production(dsn, targets, production=production)
        except FenceError as exc:
            hits.append(Hit(var=var, dsn=shown, status=None, target=None, reason=str(exc)))
            continue
        if verdict.status is FenceStatus.PRODUCTION or (verdict.reaches_production and not allow_replica):
            hits.append(Hit(var=var, dsn=shown, status=verdict.status, target=verdict.target, reason=verdict.reason))
    return hits


def describe_hits(hits: Sequence[Hit], argv: Sequence[str]) -> str:
    """What `rewind exec` says when it refuses: each variable, what it reaches, and what to do instead."""
    lines = ["Refused: the command was not started."]
    for hit in hits:
        what = f"reaches {hit.reason}" if hit.status is not None else f"could not be checked: {hit.reason}"
        lines.append(f"  {hit.var} ({hit.dsn}) {what}")
    lines.append(
        "Instead: point the variable at a replica or a restored copy (rewind replica up DUMP), check only the "
        "variables the command uses with --env VAR, or ask for approval with "
        f"`rewind exec --request -- {shlex.join(argv)}`."
    )
    return "\n".join(lines)


# --- the script a command runs ------------------------------------------------------------------------------------

_INTERPRETER = re.compile(r"(python|pypy|bash|sh|zsh|dash|ksh|node|ruby|perl|php)[0-9.]*")
_FILE_FLAGS = {"psql": ("-f", "--file")}


def script_file(argv: Sequence[str]) -> Path | None:
    """The script file a command runs, if it names one: `./fix.sh`, `python fix.py`, `psql -f fix.sql`, ..."""
    if not argv:
        return None
    program = Path(argv[0]).name
    flags = _FILE_FLAGS.get(program)
    if flags:
        for index, arg in enumerate(argv[1:], start=1):
            for flag in flags:
                if arg == flag and index + 1 < len(argv):
                    return _existing(argv[index + 1])
                if arg.startswith(flag + "=") or (flag == "-f" and arg.startswith("-f") and len(arg) > 2):
                    return _existing(arg.split("=", 1)[1] if "=" in arg else arg[2:])
        return None
    if program == "env":
        rest = list(argv[1:])
        while rest and (rest[0].startswith("-") or "=" in rest[0]):
            rest.pop(0)
        return script_file(rest)
    if _INTERPRETER.fullmatch(program):
        for arg in argv[1:]:
            if arg in ("-c", "-e", "-m", "--command", "--eval"):
                return None  # the program text is on the command line, or a module on sys.path
            if not arg.startswith("-"):
                return _existing(arg)
        return None
    path = Path(argv[0])
    if os.sep in argv[0] and path.is_file():
        return path
    resolved = shutil.which(argv[0])
    if resolved and _is_text_script(Path(resolved)):
        return Path(resolved)
    return None


def _existing(arg: str) -> Path | None:
    path = Path(arg)
    return path if path.is_file() else None


def _is_text_script(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return handle.read(2) == b"#!"
    except OSError:
        return False


def script_sha256(argv: Sequence[str]) -> str | None:
    """SHA-256 of the script file the command names, if any (what an approval of `rewind exec` binds to)."""
    path = script_file(argv)
    if path is None:
        return None
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --- read-only by privilege ---------------------------------------------------------------------------------------


class WriteCheck(BaseModel):
    """Whether a login can write: `can_write` is None when the server could not be asked (see `problem`)."""

    target: str
    role: TargetRole
    login: str | None
    can_write: bool | None
    reasons: list[str]
    default_read_only: bool | None
    in_recovery: bool | None
    problem: str | None = None

    @property
    def warning(self) -> str | None:
        return write_warning(self)


_WRITE_CHECK_SQL = """
SELECT current_user::text,
       r.rolsuper, r.rolcreaterole, r.rolcreatedb,
       pg_has_role(current_user, 'pg_write_all_data', 'USAGE'),
       has_database_privilege(current_database(), 'CREATE'),
       (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('r', 'p', 'v', 'f', 'm')
           AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%%'
           AND n.nspname NOT LIKE 'pg\\_temp%%'
           AND has_table_privilege(c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE')),
       (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind = 'S' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
           AND CASE WHEN c.relkind = 'S' THEN has_sequence_privilege(c.oid, 'UPDATE, USAGE') END),
       (SELECT string_agg(quote_ident(n.nspname), ', ' ORDER BY n.nspname) FROM pg_namespace n
         WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%%'
           AND has_schema_privilege(n.oid, 'CREATE')),
       current_setting('default_transaction_read_only')::boolean,
       pg_is_in_recovery()
FROM pg_roles r WHERE r.rolname = current_user AND %s
"""


def write_check(target: Target) -> WriteCheck:
    """Ask the server what the target's login may change (privileges, not settings: a session can unset those)."""
    base = {"target": target.name, "role": target.role}
    if not target.dsn:
        return WriteCheck(
            **base,
            login=None,
            can_write=None,
            reasons=[],
            default_read_only=None,
            in_recovery=None,
            problem="no DSN on this machine (fingerprint only)",
        )
    try:
        with psycopg.connect(target.dsn, connect_timeout=CONNECT_TIMEOUT_S, autocommit=True) as conn:
            row = conn.execute(_WRITE_CHECK_SQL, [True]).fetchone()
    except psycopg.Error as exc:
        return WriteCheck(
            **base,
            login=None,
            can_write=None,
            reasons=[],
            default_read_only=None,
            in_recovery=None,
            problem=_message(exc),
        )
    assert row is not None
    login, superuser, createrole, createdb, write_all, db_create, tables, sequences, schemas, default_ro, recovery = row
    reasons = []
    if superuser:
        reasons.append("is a superuser")  # which says it all
    elif createrole:
        reasons.append("has CREATEROLE (it can grant itself pg_write_all_data)")
    if write_all and not superuser:
        reasons.append("is a member of pg_write_all_data")
    if tables and not superuser:
        reasons.append(f"may INSERT, UPDATE, DELETE or TRUNCATE {tables} table(s)")
    if sequences and not superuser:
        reasons.append(f"may advance {sequences} sequence(s)")
    if schemas and not superuser:
        reasons.append(f"may CREATE in schema(s) {schemas}")
    if db_create and not superuser:
        reasons.append("may CREATE schemas in the database")
    if createdb and not superuser:
        reasons.append("has CREATEDB")
    return WriteCheck(
        **base,
        login=login,
        can_write=bool(reasons) and not recovery,
        reasons=reasons,
        default_read_only=default_ro,
        in_recovery=recovery,
    )


def login_can_write(target: Target) -> bool | None:
    """True if the target's login holds a privilege that changes data; None when the server cannot be asked."""
    return write_check(target).can_write


def write_warning(check: WriteCheck) -> str | None:
    """A warning for a read-only (replica or backup) target whose login can write; None when there is none to give."""
    if check.role is TargetRole.PRODUCTION or not check.can_write:
        return None
    return (
        f"{check.role.value} target {check.target!r} logs in as {check.login!r}, which can write: "
        f"it {'; '.join(check.reasons)}. Read-only queries are still refused by the parser and a READ ONLY "
        "transaction, but give it a read-only login (`rewind fence role NAME` prints the SQL)."
    )


def read_only_role_sql(role: str, database: str | None = None) -> str:
    """SQL that creates a login able to read every table and write none (PostgreSQL 14 or later)."""
    name = sql.Identifier(role).as_string(None)
    lines = [
        "-- A login that reads every table and writes none (PostgreSQL 14+). Run as a superuser.",
        f"CREATE ROLE {name} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;",
        f"GRANT pg_read_all_data TO {name};",
    ]
    if database:
        lines.append(f"GRANT CONNECT ON DATABASE {sql.Identifier(database).as_string(None)} TO {name};")
    lines += [
        "-- A second layer: its transactions start read-only (a session could unset this; the privileges stay).",
        f"ALTER ROLE {name} SET default_transaction_read_only = on;",
        f"ALTER ROLE {name} SET statement_timeout = '60s';",
        "-- Then give it a password without it landing in your shell history, in psql:",
        f"--   \\password {name}",
        "-- and check it with: rewind targets --check",
    ]
    return "\n".join(lines) + "\n"
