"""Named database targets. Targets exist only in configuration; DSNs are masked wherever they are shown."""

import enum
import re
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict

from restore.errors import TargetError

_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]*:)(?P<secret>[^@\s]*)(?P<tail>@)", re.I)
_KV_PASSWORD = re.compile(r"(?P<head>\bpassword\s*=\s*)(?P<secret>'(?:[^'\\]|\\.)*'|\S+)", re.I)
MASK = "***"


class TargetRole(enum.StrEnum):
    PRODUCTION = "production"
    REPLICA = "replica"
    BACKUP = "backup"


class Target(BaseModel):
    """A named connection with a role. `production` is written only through approved proposals."""

    model_config = ConfigDict(frozen=True)

    name: str
    dsn: str
    role: TargetRole

    @property
    def read_only(self) -> bool:
        return self.role is not TargetRole.PRODUCTION

    def __str__(self) -> str:
        return f"{self.name} ({self.role.value})"

    def __repr__(self) -> str:
        return f"Target(name={self.name!r}, role={self.role.value!r}, dsn={mask_dsn(self.dsn)!r})"


def mask_dsn(text: str) -> str:
    """Replace every password in URL or key=value DSNs found anywhere in `text`."""
    text = _URL_PASSWORD.sub(lambda m: f"{m['head']}{MASK}{m['tail']}", text)
    return _KV_PASSWORD.sub(lambda m: f"{m['head']}{MASK}", text)


def looks_like_dsn(value: str) -> bool:
    return "://" in value or "=" in value


def resolve_target(name_or_dsn: str, targets: Mapping[str, Target], default_role: TargetRole) -> Target:
    """A configured target by name, or an ad-hoc one from a DSN (CLI only; Slack never passes DSNs)."""
    if name_or_dsn in targets:
        return targets[name_or_dsn]
    if looks_like_dsn(name_or_dsn):
        return Target(name=mask_dsn(name_or_dsn), dsn=name_or_dsn, role=default_role)
    known = ", ".join(sorted(targets)) or "none configured (set REWIND_TARGETS)"
    raise TargetError(f"Unknown target {name_or_dsn!r}. Known targets: {known}.")


def require_role(target: Target, *roles: TargetRole) -> Target:
    if target.role not in roles:
        wanted = " or ".join(r.value for r in roles)
        raise TargetError(f"Target {target.name!r} is a {target.role.value} target; this needs a {wanted} target.")
    return target
