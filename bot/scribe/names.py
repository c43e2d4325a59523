"""Display names for user ids, looked up once per process (users.info in Slack, the shell's own names)."""

from collections.abc import Callable

Lookup = Callable[[str], str | None]


class UserDirectory:
    """Prefers the real name, then the display name, then the id; caches per process."""

    def __init__(self, lookup: Lookup) -> None:
        self._lookup = lookup
        self._names: dict[str, str] = {}

    def name(self, user_id: str) -> str:
        if user_id.startswith("@"):
            return user_id[1:]
        if user_id not in self._names:
            try:
                found = self._lookup(user_id)
            except Exception:  # a missing user or a Slack hiccup must not lose the entry
                found = None
            self._names[user_id] = found or user_id
        return self._names[user_id]

    def known(self, user_id: str) -> str | None:
        """The name if already looked up; never calls out (safe before a Slack ack)."""
        return user_id[1:] if user_id.startswith("@") else self._names.get(user_id)

    def remember(self, user_id: str, name: str | None) -> None:
        if name:
            self._names.setdefault(user_id, name)


def name_from_profile(user: dict[str, object]) -> str | None:
    """users.info's user object → real name, display name or None."""
    profile = user.get("profile") if isinstance(user.get("profile"), dict) else {}
    assert isinstance(profile, dict)
    for candidate in (user.get("real_name"), profile.get("real_name"), profile.get("display_name")):
        if isinstance(candidate, str) and candidate.strip():
            return candidate.strip()
    return None
