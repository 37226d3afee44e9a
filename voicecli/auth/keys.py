"""Which API key voicecli uses, and where it came from.

Precedence, highest first: the ``--api-key`` flag, the environment (``OPENAI_API_KEY``, or
``VOICECLI_API_API_KEY`` which config.py lets win over it), the OS keyring (service ``voicecli``,
username ``api_key``), then ``api.api_key`` in the config file. No key anywhere is not an error
here: the caller then talks to the embedded local server.

The flag reaches :func:`resolve_key` through the settings, as every flag does:
``load_settings(path, os.environ, {"api.api_key": flag_value})``.

The keyring sits behind :class:`KeyStore` so that tests can use :class:`MemoryKeyStore`.
A machine without a keyring backend (headless Linux, containers) reads as "no key in the
keyring"; storing there fails with :class:`NoKeyringError`, a :class:`ConfigError` (exit 2):
the fix is to configure the key another way, not to retry.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Protocol

from voicecli.config import Settings
from voicecli.errors import ConfigError
from voicecli.redact import mask_key, redact

log = logging.getLogger(__name__)

KEYRING_SERVICE = "voicecli"
KEYRING_USERNAME = "api_key"
KEYRING_SOURCE = "keyring"
FLAG_SOURCE = "flag"
KEY_SETTING = "api.api_key"


class NoKeyringError(ConfigError):
    """The keyring cannot store or remove the key: there is no backend, or it refused."""

    default_hint = "set OPENAI_API_KEY in the environment instead (or api.api_key in the config)"


@dataclass(frozen=True)
class ResolvedKey:
    """An API key and where it came from: flag, env:NAME, keyring or file:PATH."""

    # repr=False: a ResolvedKey in a log line or a traceback must not show the key.
    value: str = field(repr=False)
    source: str

    @property
    def masked(self) -> str:
        return mask_key(self.value)


class KeyStore(Protocol):
    """Where `voicecli auth login` keeps the key."""

    def get(self) -> str | None:
        """The stored key, or None when there is none or the store cannot be read."""
        ...

    def set(self, key: str) -> None:
        """Store ``key``, replacing any previous one; NoKeyringError if that is impossible."""
        ...

    def delete(self) -> bool:
        """Remove the key; False when there was none. NoKeyringError if impossible."""
        ...


class SystemKeyring:
    """The OS keyring through the ``keyring`` package (its configured or detected backend)."""

    # keyring loads its backends on import (~15 ms): only when a key is looked up there.

    def get(self) -> str | None:
        import keyring.errors

        try:
            return keyring.get_password(KEYRING_SERVICE, KEYRING_USERNAME) or None
        except keyring.errors.NoKeyringError:
            return None
        except keyring.errors.KeyringError as exc:
            # A locked or broken keyring must not stop a key from the config file being used.
            log.warning("cannot read the keyring, ignoring it: %s", redact(str(exc)))
            return None

    def set(self, key: str) -> None:
        import keyring.errors

        try:
            keyring.set_password(KEYRING_SERVICE, KEYRING_USERNAME, key)
        except keyring.errors.KeyringError as exc:
            raise _store_error(exc, "store the key in") from None

    def delete(self) -> bool:
        import keyring.errors

        try:
            keyring.delete_password(KEYRING_SERVICE, KEYRING_USERNAME)
        except keyring.errors.PasswordDeleteError:
            return False  # nothing stored: what logout wanted anyway
        except keyring.errors.KeyringError as exc:
            raise _store_error(exc, "remove the key from") from None
        return True


def _store_error(exc: Exception, action: str) -> NoKeyringError:
    import keyring.errors

    if isinstance(exc, keyring.errors.NoKeyringError):
        return NoKeyringError("no keyring backend on this machine")
    # One line: backend messages (D-Bus, Keychain) can span several.
    detail = " ".join(redact(str(exc)).split()) or type(exc).__name__
    return NoKeyringError(f"cannot {action} the keyring: {detail}")


class MemoryKeyStore:
    """A KeyStore in a variable, for tests and for callers that must not touch the OS keyring."""

    def __init__(self, key: str | None = None) -> None:
        self._key = key

    def get(self) -> str | None:
        return self._key

    def set(self, key: str) -> None:
        self._key = key

    def delete(self) -> bool:
        had_key, self._key = self._key is not None, None
        return had_key


def resolve_key(settings: Settings, store: KeyStore) -> ResolvedKey | None:
    """The key to use, by precedence flag > environment > keyring > file; None if there is none.

    The keyring is read only when neither a flag nor a variable supplies the key, so that a
    slow or prompting keyring does not delay a command that does not need it.
    """
    value, source = settings.api.api_key, settings.source(KEY_SETTING)
    kind = source.partition(":")[0]
    if value and kind in ("flag", "env"):
        return ResolvedKey(value, FLAG_SOURCE if kind == "flag" else source)
    stored = store.get()
    if stored:
        return ResolvedKey(stored, KEYRING_SOURCE)
    if value and kind == "file":
        return ResolvedKey(value, source)
    return None
