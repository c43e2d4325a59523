"""Logging that never shows a secret: tokens and DSN passwords are masked in every line, tracebacks included."""

import logging
import re

from restore.targets import mask_dsn

_TOKEN = re.compile(r"\b(xox[abposr]|xapp)-[A-Za-z0-9-]+")


def mask_secrets(text: str) -> str:
    return mask_dsn(_TOKEN.sub(lambda m: f"{m.group(1)}-***", text))


class SecretMaskingFormatter(logging.Formatter):
    """Masks the finished line, so a secret in a message, an argument or an exception's text is caught alike."""

    def format(self, record: logging.LogRecord) -> str:
        return mask_secrets(super().format(record))


def configure_logging(quiet: bool = False) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(SecretMaskingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING if quiet else logging.INFO)
