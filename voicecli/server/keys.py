"""Which keys `voicecli serve` accepts: standard keys, minted ephemeral keys, or any (--open)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from voicecli.server.shapes import JsonObject


class KeyVerdict(StrEnum):
    STANDARD = "standard"
    EPHEMERAL = "ephemeral"
    MISSING = "missing"
    INVALID = "invalid"
    EXPIRED = "expired"


@dataclass
class Minted:
    value: str
    expires_at: float
    session: JsonObject


@dataclass
class KeyStore:
    """Accepted standard keys and the ephemeral keys this server minted."""

    standard: frozenset[str] = frozenset()
    open: bool = False  # the embedded default: any key works
    clock: Callable[[], float] = time.time
    _minted: dict[str, Minted] = field(default_factory=dict)

    @classmethod
    def of(cls, keys: Iterable[str], *, open: bool) -> KeyStore:
        return cls(standard=frozenset(keys), open=open)

    def mint(self, session: JsonObject, seconds: int) -> Minted:
        minted = Minted(f"ek_{secrets.token_hex(16)}", self.clock() + seconds, session)
        self._minted[minted.value] = minted
        return minted

    def check(self, key: str | None) -> KeyVerdict:
        if not key:
            return KeyVerdict.MISSING
        minted = self._minted.get(key)
        if minted is not None:
            alive = self.clock() < minted.expires_at
            return KeyVerdict.EPHEMERAL if alive else KeyVerdict.EXPIRED
        if key in self.standard or self.open:
            return KeyVerdict.EPHEMERAL if key.startswith("ek_") else KeyVerdict.STANDARD
        return KeyVerdict.INVALID

    def session_of(self, key: str) -> JsonObject | None:
        minted = self._minted.get(key)
        return minted.session if minted is not None else None
