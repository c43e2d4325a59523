"""Logging that never shows a secret: tokens and DSN passwords are masked in every record."""

import logging
import re

from restore.targets import mask_dsn

_TOKEN = re.compile(r"\b(xox[abposr]|xapp)-[A-Za-z0-9-]+")


def mask_secrets(text: str) -> str:
    return mask_dsn(_TOKEN.sub(lambda m: f"{m.group(1)}-***", text))


class SecretMaskingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = mask_secrets(record.getMessage())
        record.args = None
        return True


def configure_logging(quiet: bool = False) -> None:
    handler = logging.StreamHandler()
    handler.addFilter(SecretMaskingFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING if quiet else logging.INFO)
