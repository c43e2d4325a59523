"""`rewind fence check|learn|role`, `rewind exec` and `rewind targets`; see restore/cli/__init__.py for the contract."""

import argparse
import os
import subprocess
import sys
from collections.abc import Callable, Sequence

from pydantic import BaseModel

from restore.cli import TargetsProvider
from restore.errors import RewindError
from restore.fence import (
    EXIT_PRODUCTION,
    FenceError,
    FenceStatus,
    Fingerprint,
    Hit,
    WriteCheck,
    describe_hits,
    find_production,
    fingerprint,
    preflight,
    production_fingerprints,
    read_only_role_sql,
    remember,
    write_check,
)
from restore.targets import Target, TargetRole, mask_dsn

# What `rewind exec --request` calls once the bot supplies it: (argv, hits) -> exit code.
RequestHandler = Callable[[list[str], list[Hit]], int]


class FenceCheckOutput(BaseModel):
    """What `rewind fence check --json` prints."""

    dsn: str
    status: str
    target: str | None
    fingerprint: str | None
    in_recovery: bool | None
    reason: str
    exit_code: int


class TargetOutput(BaseModel):
    """One line of `rewind targets [--check] --json`."""

    name: str
    role: str
    dsn: str | None
    fingerprint: str | None
    fingerprint_source: str | None
    write_check: WriteCheck | None = None
    warnings: list[str] = []


def register(
    subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]",
    targets: TargetsProvider,
    request: RequestHandler | None = None,
) -> None:
    """Adds `fence` (check, learn, role), `exec` and `targets`."""
    fence = subparsers.add_parser("fence", help="recognise production by identity, not by hostname")
    actions = fence.add_subparsers(dest="fence_command", required=True, metavar="ACTION")

    check = actions.add_parser(
        "check", help="exit 0 if DSN is not production, 3 if it is, 4 if it is a standby of production"
    )
    check.add_argument("dsn", help="the DSN to check (Rewind connects to it to read its fingerprint)")
    check.add_argument("--allow-replica", action="store_true", help="exit 0 for a standby of production")
    check.add_argument("--json", action="store_true", help="print the verdict as JSON")
    check.set_defaults(func=lambda args: cmd_check(args, targets))

    learn = actions.add_parser("learn", help="read production targets' fingerprints and print them for pinning")
    learn.add_argument("--json", action="store_true", help="print JSON")
    learn.set_defaults(func=lambda args: cmd_learn(args, targets))

    role = actions.add_parser("role", help="print the SQL that creates a read-only login")
    role.add_argument("name", help="the login to create, e.g. rewind_ro")
    role.add_argument("--database", help="also GRANT CONNECT on this database")
    role.set_defaults(func=cmd_role)

    run = subparsers.add_parser(
        "exec",
        help="run a command unless a DSN in its environment reaches production",
        description="Checks every environment variable that holds a Postgres DSN (or only those named with --env) "
        "and runs COMMAND only if none reaches production. Its exit code is passed through; its environment is "
        "left as it is. Refused: exit 3, and the command is not started.",
    )
    run.add_argument("--env", action="append", metavar="VAR", help="check only this variable (repeatable)")
    run.add_argument("--allow-replica", action="store_true", help="let a standby of production through")
    run.add_argument("--request", action="store_true", help="ask for approval instead of refusing")
    run.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARG ...]")
    run.set_defaults(func=lambda args: cmd_exec(args, targets, request))

    listing = subparsers.add_parser(
        "targets", help="list the configured targets; --check asks whether logins can write"
    )
    listing.add_argument("--check", action="store_true", help="connect to each target: can its login write?")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(func=lambda args: cmd_targets(args, targets))


# --- fence --------------------------------------------------------------------------------------------------------


def cmd_check(args: argparse.Namespace, targets: TargetsProvider) -> int:
    try:
        verdict = find_production(args.dsn, targets())
    except FenceError as exc:
        if not args.json:
            raise
        # An agent reading JSON gets the refusal in the same shape; the exit code (1) still fails closed.
        print(
            FenceCheckOutput(
                dsn=mask_dsn(args.dsn),
                status="unknown",
                target=None,
                fingerprint=None,
                in_recovery=None,
                reason=str(exc),
                exit_code=1,
            ).model_dump_json()
        )
        return 1
    code = 0 if (args.allow_replica and verdict.status is FenceStatus.REPLICA_OF_PRODUCTION) else verdict.exit_code
    shown = FenceCheckOutput(
        dsn=mask_dsn(args.dsn),
        status=verdict.status.value,
        target=verdict.target,
        fingerprint=str(verdict.fingerprint) if verdict.fingerprint else None,
        in_recovery=verdict.fingerprint.in_recovery if verdict.fingerprint else None,
        reason=verdict.reason,
        exit_code=code,
    )
    if args.json:
        print(shown.model_dump_json())
    else:
        label = shown.status + (f" ({shown.target})" if shown.target else "")
        print(f"{label}: {shown.dsn} is {verdict.reason}; fingerprint {shown.fingerprint}")
    return code


def cmd_learn(args: argparse.Namespace, targets: TargetsProvider) -> int:
    found = production_fingerprints(targets())
    if args.json:
        print("[" + ", ".join(item.model_dump_json() for item in found) + "]")
    elif not found:
        print("no production targets configured (set REWIND_TARGETS or REWIND_TARGETS_FILE)")
    for item in [] if args.json else found:
        if item.fingerprint is None:
            print(f"# {item.target}: unknown ({item.problem})")
            continue
        how = "already pinned" if item.source == "pinned" else f"{item.source}; pin it in the targets file (TOML)"
        print(f"# {item.target}: {how}")
        print(f'[targets.{item.target}]\nfingerprint = "{item.fingerprint}"')
    return 0 if all(item.fingerprint is not None for item in found) else 1


def cmd_role(args: argparse.Namespace) -> int:
    print(read_only_role_sql(args.name, args.database), end="")
    return 0


# --- exec ---------------------------------------------------------------------------------------------------------


def cmd_exec(args: argparse.Namespace, targets: TargetsProvider, request: RequestHandler | None) -> int:
    argv = list(args.command)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        raise RewindError("Nothing to run: give the command after --, e.g. rewind exec -- python fix.py")
    hits = preflight(os.environ, targets(), only=args.env, allow_replica=args.allow_replica)
    if hits:
        if args.request:
            if request is None:
                raise RewindError(
                    "Approval requests need the bot's approval flow, which this installation does not provide. "
                    "Run the command against a replica or a restored copy instead."
                )
            return request(argv, hits)
        print(describe_hits(hits, argv), file=sys.stderr)
        return EXIT_PRODUCTION
    return run_command(argv)


def run_command(argv: Sequence[str]) -> int:
    """Run `argv` with this process's environment, untouched; its exit code (128+N when killed by signal N)."""
    try:
        completed = subprocess.run(list(argv), check=False)
    except FileNotFoundError:
        print(f"rewind: {argv[0]}: command not found", file=sys.stderr)
        return 127
    except PermissionError:
        print(f"rewind: {argv[0]}: permission denied", file=sys.stderr)
        return 126
    return completed.returncode if completed.returncode >= 0 else 128 - completed.returncode


# --- targets ------------------------------------------------------------------------------------------------------


def cmd_targets(args: argparse.Namespace, targets: TargetsProvider) -> int:
    configured = targets()
    prints = {item.target: item for item in production_fingerprints(configured, connect=False)}
    shown: list[TargetOutput] = []
    for target in configured.values():
        known = prints.get(target.name)
        item = TargetOutput(
            name=target.name,
            role=target.role.value,
            dsn=mask_dsn(target.dsn) if target.dsn else None,
            fingerprint=str(known.fingerprint) if known and known.fingerprint else None,
            fingerprint_source=known.source if known else None,
        )
        if args.check:
            _check_target(target, item)
        shown.append(item)
    if args.json:
        print("[" + ", ".join(item.model_dump_json() for item in shown) + "]")
    else:
        _print_targets(shown, args.check)
    return 1 if any(item.warnings for item in shown) else 0


def _check_target(target: Target, item: TargetOutput) -> None:
    check = write_check(target)
    item.write_check = check
    if check.warning:
        item.warnings.append(check.warning)
    if target.role is TargetRole.PRODUCTION and target.dsn:
        try:
            actual = fingerprint(target.dsn)
        except FenceError as exc:
            item.warnings.append(f"cannot read its fingerprint: {exc}")
            return
        remember(target, actual)
        item.fingerprint, item.fingerprint_source = str(actual), item.fingerprint_source or "connected"
        if target.fingerprint and not Fingerprint.parse(target.fingerprint).same_database(actual):
            item.warnings.append(
                f"its pinned fingerprint {target.fingerprint} is not the server's ({actual}): "
                "update the pin, or the fence will not recognise it."
            )


def _print_targets(shown: list[TargetOutput], checked: bool) -> None:
    if not shown:
        print("no targets configured (set REWIND_TARGETS or REWIND_TARGETS_FILE)")
    for item in shown:
        where = item.dsn or "(no DSN here: fingerprint only)"
        print(f"{item.name} ({item.role})  {where}")
        if item.fingerprint:
            print(f"  fingerprint {item.fingerprint} ({item.fingerprint_source})")
        check = item.write_check
        if checked and check is not None:
            if check.can_write is None:
                print(f"  login: unknown ({check.problem})")
            elif check.can_write:
                print(f"  login {check.login} can write: it {'; '.join(check.reasons)}")
            else:
                extra = " (server in recovery)" if check.in_recovery and check.reasons else ""
                print(f"  login {check.login} cannot write{extra}")
        for warning in item.warnings:
            print(f"  warning: {warning}")
