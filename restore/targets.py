"""Named database targets. Targets exist only in configuration; DSNs are masked wherever they are shown."""

import enum
import json
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from restore.errors import TargetError

_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]*:)(?P<secret>[^@\s]*)(?P<tail>@)", re.I)
_KV_PASSWORD = re.compile(r"(?P<head>\bpassword\s*=\s*)(?P<secret>'(?:[^'\\]|\\.)*'|\S+)", re.I)
MASK = "***"
_FINGERPRINT = re.compile(r"\d+/.+/\d+")


class TargetRole(enum.StrEnum):
    PRODUCTION = "production"
    REPLICA = "replica"
    BACKUP = "backup"


class Target(BaseModel):
    """A named connection with a role. `production` is written only through approved proposals.

    `fingerprint` pins the identity of a production database (`rewind fence learn` prints it), so that the fence
    recognises production on a machine that holds no production credentials: such a target may have no `dsn`.
    """

    model_config = ConfigDict(frozen=True)

    name: str
    dsn: str | None = None
    role: TargetRole
    fingerprint: str | None = None

    @model_validator(mode="after")
    def _reachable_or_pinned(self) -> "Target":
        if not self.dsn and not (self.role is TargetRole.PRODUCTION and self.fingerprint):
            raise ValueError(f"target {self.name!r} needs a dsn (a production target may give a fingerprint instead)")
        if self.fingerprint is not None and not _FINGERPRINT.fullmatch(self.fingerprint.strip()):
            raise ValueError(
                f"target {self.name!r}: fingerprint must be system_identifier/database/oid, as `rewind fence learn` "
                "prints it"
            )
        return self

    @property
    def read_only(self) -> bool:
        return self.role is not TargetRole.PRODUCTION

    def require_dsn(self) -> str:
        """The DSN; a TargetError for a production target known here only by its pinned fingerprint."""
        if not self.dsn:
            raise TargetError(
                f"Target {self.name!r} has no DSN on this machine, only a pinned fingerprint for the fence. "
                "Run this where its DSN is configured."
            )
        return self.dsn

    def __str__(self) -> str:
        return f"{self.name} ({self.role.value})"

    def __repr__(self) -> str:
        return f"Target(name={self.name!r}, role={self.role.value!r}, dsn={mask_dsn(self.dsn or '')!r})"


def mask_dsn(text: str) -> str:
    """Replace every password in URL or key=value DSNs found anywhere in `text`."""
    text = _URL_PASSWORD.sub(lambda m: f"{m['head']}{MASK}{m['tail']}", text)
    return _KV_PASSWORD.sub(lambda m: f"{m['head']}{MASK}", text)


def looks_like_dsn(value: str) -> bool:
    return "://" in value or "=" in value


def resolve_target(name_or_dsn: str, targets: Mapping[str, Target], default_role: TargetRole) -> Target:
    """A configured target by name, or an ad-hoc one from a DSN (CLI only; Slack never passes DSNs)."""
    if name_or_dsn in targets:
        target = targets[name_or_dsn]
        target.require_dsn()
        return target
    if looks_like_dsn(name_or_dsn):
        return Target(name=mask_dsn(name_or_dsn), dsn=name_or_dsn, role=default_role)
    known = ", ".join(sorted(targets)) or "none configured (set REWIND_TARGETS)"
    raise TargetError(f"Unknown target {name_or_dsn!r}. Known targets: {known}.")


def require_role(target: Target, *roles: TargetRole) -> Target:
    if target.role not in roles:
        wanted = " or ".join(r.value for r in roles)
        raise TargetError(f"Target {target.name!r} is a {target.role.value} target; this needs a {wanted} target.")
    return target


def parse_targets(raw: Any, source: str) -> dict[str, Target]:
    """Targets from `{"name": {"dsn": ..., "role": ..., "fingerprint": ...}}`; TargetError names `source`."""
    raw = raw.get("targets", raw) if isinstance(raw, dict) else raw
    if not isinstance(raw, dict):
        raise TargetError(
            f'{source}: expected an object like {{"prod": {{"dsn": "postgresql://...", "role": "production"}}}}'
        )
    targets: dict[str, Target] = {}
    for name, spec in raw.items():
        if isinstance(spec, Target):
            targets[name] = spec
            continue
        if not isinstance(spec, dict):
            raise TargetError(f"{source}: target {name!r} must be an object with dsn and role")
        try:
            targets[name] = Target.model_validate({**spec, "name": name})
        except ValidationError as exc:
            problems = "; ".join(error["msg"] for error in exc.errors())
            raise TargetError(f"{source}: target {name!r}: {mask_dsn(problems)}") from None
    return targets


def load_targets_file(path: Path) -> dict[str, Target]:
    """A TOML (`[targets.prod]`) or JSON targets file."""
    try:
        text = path.read_text()
        raw = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (OSError, ValueError) as exc:
        raise TargetError(f"targets file {path}: {exc}. Fix the file or REWIND_TARGETS_FILE.") from None
    return parse_targets(raw, f"targets file {path}")


def targets_from_environ(environ: Mapping[str, str] | None = None) -> dict[str, Target]:
    """REWIND_TARGETS (JSON) merged with REWIND_TARGETS_FILE, as the bot's settings read them.

    For code that runs outside the bot (a script's one-line fence, say) and so has no settings object.
    """
    environ = os.environ if environ is None else environ
    targets: dict[str, Target] = {}
    inline = environ.get("REWIND_TARGETS", "").strip()
    if inline:
        try:
            raw = json.loads(inline)
        except ValueError as exc:
            raise TargetError(f"REWIND_TARGETS is not JSON: {exc}") from None
        targets.update(parse_targets(raw, "REWIND_TARGETS"))
    path = environ.get("REWIND_TARGETS_FILE", "").strip()
    if path:
        targets.update(load_targets_file(Path(path)))
    return targets
