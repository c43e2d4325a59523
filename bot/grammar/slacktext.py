"""Slack's text escapes. Slack sends `&`, `<` and `>` in message and command text as `&amp;`, `&lt;` and `&gt;`.

Text that carries Slack markup (entries: mentions, links) is stored as Slack sent it and unescaped where it is shown,
after the markup is read. Plain text (an incident's title) is stored unescaped, and escaped again on its way back
to Slack.
"""

_ESCAPES = (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"))


def unescape(text: str) -> str:
    """Slack's text as people typed it (`&amp;` last, so a typed `&lt;` comes back as `&lt;`)."""
    for plain, escaped in reversed(_ESCAPES):
        text = text.replace(escaped, plain)
    return text


def escape(text: str) -> str:
    """Plain text made safe to send to Slack: the three characters it reads as markup."""
    for plain, escaped in _ESCAPES:
        text = text.replace(plain, escaped)
    return text
