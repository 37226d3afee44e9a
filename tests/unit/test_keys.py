"""voicecli.server.keys.KeyStore: which keys `voicecli serve` lets in."""

from __future__ import annotations

import pytest

from voicecli.server.keys import KeyStore, KeyVerdict

STANDARD = "sk-proj-abcdefghijklmnop1234"
OTHER = "sk-proj-zzzzzzzzzzzzzzzz9999"
SESSION = {"type": "realtime", "model": "gpt-realtime", "instructions": "Be brief."}


class Clock:
    """An injected clock we move by hand."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_standard_key_is_accepted() -> None:
    store = KeyStore.of([STANDARD], open=False)
    assert store.check(STANDARD) is KeyVerdict.STANDARD


def test_unknown_key_is_invalid_when_closed() -> None:
    store = KeyStore.of([STANDARD], open=False)
    assert store.check(OTHER) is KeyVerdict.INVALID
    assert store.check(STANDARD + "x") is KeyVerdict.INVALID
    assert store.check("ek_never_minted_here") is KeyVerdict.INVALID


def test_any_key_is_accepted_when_open() -> None:
    store = KeyStore.of([], open=True)
    assert store.check(OTHER) is KeyVerdict.STANDARD
    assert store.check("anything") is KeyVerdict.STANDARD
    # An ek_ key this server did not mint is still treated as ephemeral in open mode.
    assert store.check("ek_from_somewhere_else") is KeyVerdict.EPHEMERAL


@pytest.mark.parametrize("open_", [False, True])
@pytest.mark.parametrize("key", [None, ""])
def test_missing_key(key: str | None, open_: bool) -> None:
    store = KeyStore.of([STANDARD], open=open_)
    assert store.check(key) is KeyVerdict.MISSING


def test_minted_key_is_ephemeral_until_it_expires() -> None:
    clock = Clock()
    store = KeyStore(standard=frozenset([STANDARD]), clock=clock)
    minted = store.mint(SESSION, seconds=600)
    assert minted.value.startswith("ek_")
    assert minted.expires_at == clock.now + 600
    assert store.check(minted.value) is KeyVerdict.EPHEMERAL
    clock.now += 599.9
    assert store.check(minted.value) is KeyVerdict.EPHEMERAL
    clock.now += 0.1
    assert store.check(minted.value) is KeyVerdict.EXPIRED
    clock.now += 3600
    assert store.check(minted.value) is KeyVerdict.EXPIRED


def test_an_expired_minted_key_stays_expired_even_when_open() -> None:
    clock = Clock()
    store = KeyStore(open=True, clock=clock)
    minted = store.mint(SESSION, seconds=10)
    clock.now += 11
    assert store.check(minted.value) is KeyVerdict.EXPIRED


def test_minted_keys_are_distinct_and_independent() -> None:
    clock = Clock()
    store = KeyStore(clock=clock)
    short = store.mint(SESSION, seconds=10)
    long = store.mint({"type": "realtime"}, seconds=7200)
    assert short.value != long.value
    clock.now += 60
    assert store.check(short.value) is KeyVerdict.EXPIRED
    assert store.check(long.value) is KeyVerdict.EPHEMERAL


def test_session_of_a_minted_key() -> None:
    store = KeyStore(clock=Clock())
    minted = store.mint(SESSION, seconds=600)
    assert store.session_of(minted.value) == SESSION
    assert store.session_of(STANDARD) is None
    assert store.session_of("ek_unknown") is None


def test_standard_keys_do_not_become_ephemeral() -> None:
    store = KeyStore.of([STANDARD], open=False)
    minted = store.mint(SESSION, seconds=600)
    assert store.check(STANDARD) is KeyVerdict.STANDARD
    assert store.check(minted.value) is KeyVerdict.EPHEMERAL
