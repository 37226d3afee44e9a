"""Keep secrets off screens, logs, recordings and event dumps."""

from __future__ import annotations

import logging
import re
from typing import TextIO

# OpenAI standard keys (sk-..., sk-proj-...), ephemeral keys (ek_...), and Bearer headers.
# At a word boundary 8 characters make a key; glued to a word (URL-encoded `%3Dsk-…`, an ANSI
# colour code `\x1b[31msk-…`) it takes 20 and a digit, so words like "risk-assessment" survive.
_SECRET = re.compile(r"(sk-[A-Za-z0-9_\-]{8,}|ek_[A-Za-z0-9_\-]{8,})")
_BEARER = re.compile(r"(?i)(bearer(?:\s+|%20|\+))([A-Za-z0-9_\-\.]{8,})")


def mask_key(key: str) -> str:
    """Show a key the way `auth status` does: prefix and the last four characters."""
    if len(key) <= 8:
        return "…" * (1 if key else 0)
    prefix = "ek_" if key.startswith("ek_") else key[:3]
    return f"{prefix}…{key[-4:]}"


def redact(text: str) -> str:
    """Replace every key-like string in ``text`` by its mask."""
    text = _SECRET.sub(_mask_match, text)
    return _BEARER.sub(lambda m: m.group(1) + mask_key(m.group(2)), text)


def _mask_match(match: re.Match[str]) -> str:
    key, start = match.group(1), match.start(1)
    glued = start > 0 and match.string[start - 1].isalnum()
    if glued and (len(key) < 23 or not any(c.isdigit() for c in key)):
        return key
    return mask_key(key)


class RedactingFilter(logging.Filter):
    """A logging filter that redacts the formatted message of every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a bad format call: let logging report it, not crash
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


class RedactingFormatter(logging.Formatter):
    """Redacts the whole formatted record, tracebacks included."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def redacting_handler(stream: TextIO) -> logging.Handler:
    """The handler every voicecli log line goes through: message and traceback redacted."""
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(RedactingFormatter("%(levelname)s %(name)s: %(message)s"))
    return handler
