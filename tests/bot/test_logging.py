"""Secrets never reach a log line: tokens and DSN passwords are masked, in messages, arguments and tracebacks."""

import logging

from bot.logging import SecretMaskingFormatter, mask_secrets


def test_tokens_and_passwords_are_masked() -> None:
    text = "token xoxb-1234-5678-abcdef app xapp-1-A0-1-zz dsn postgresql://rewind:hunter2@db:5432/prod password=s3cr3t"
    masked = mask_secrets(text)
    for secret in ("1234-5678-abcdef", "A0-1-zz", "hunter2", "s3cr3t"):
        assert secret not in masked
    assert "postgresql://rewind:***@db:5432/prod" in masked


def test_the_formatter_masks_arguments_and_tracebacks() -> None:
    formatter = SecretMaskingFormatter("%(message)s")
    try:
        raise RuntimeError("cannot connect to postgresql://u:topsecret@h/db")
    except RuntimeError as exc:
        record = logging.LogRecord(
            "t", logging.ERROR, __file__, 1, "using %s", ("xoxb-999-secret",), (type(exc), exc, exc.__traceback__)
        )
    line = formatter.format(record)
    assert "topsecret" not in line and "999-secret" not in line and "RuntimeError" in line
