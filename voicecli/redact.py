"""Keep secrets off screens, logs, recordings and event dumps."""

from __future__ import annotations

import logging
import re

# OpenAI standard keys (sk-..., sk-proj-...), ephemeral keys (ek_...), and Bearer headers.
_SECRET = re.compile(r"\b(sk-[A-Za-z0-9_\-]{8,}|ek_[A-Za-z0-9_\-]{8,})")
_BEARER = re.compile(r"(?i)(bearer\s+)([A-Za-z0-9_\-\.]{8,})")


def mask_key(key: str) -> str:
    """Show a key the way `auth status` does: prefix and the last four characters."""
    if len(key) <= 8:
        return "…" * (1 if key else 0)
    prefix = "ek_" if key.startswith("ek_") else key[:3]
    return f"{prefix}…{key[-4:]}"


def redact(text: str) -> str:
    """Replace every key-like string in ``text`` by its mask."""
    text = _SECRET.sub(lambda m: mask_key(m.group(1)), text)
    return _BEARER.sub(lambda m: m.group(1) + mask_key(m.group(2)), text)


class RedactingFilter(logging.Filter):
    """A logging filter that redacts the formatted message of every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True
