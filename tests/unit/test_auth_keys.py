"""Which API key voicecli uses: precedence, reported source, masking, machines without a keyring."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import keyring
import keyring.backend
import keyring.core
import keyring.errors
import pytest

from voicecli.auth.keys import (
    MemoryKeyStore,
    NoKeyringError,
    ResolvedKey,
    SystemKeyring,
    resolve_key,
)
from voicecli.config import Settings, load_settings
from voicecli.errors import EXIT_USAGE

FLAG_KEY = "sk-flag-aaaaaaaaaaaa1111"
ENV_KEY = "sk-env-bbbbbbbbbbbbb2222"
RING_KEY = "sk-ring-cccccccccccc3333"
FILE_KEY = "sk-file-dddddddddddd4444"


def settings(
    tmp_path: Path,
    *,
    file_key: str | None = None,
    env: dict[str, str] | None = None,
    flag: str | None = None,
) -> Settings:
    config = tmp_path / "config.toml"
    config.write_text(f'[api]\napi_key = "{file_key}"\n' if file_key else "", encoding="utf-8")
    return load_settings(config, env or {}, {"api.api_key": flag})


# ---- precedence -------------------------------------------------------------------------------


def test_the_flag_wins_over_everything(tmp_path: Path) -> None:
    s = settings(tmp_path, file_key=FILE_KEY, env={"OPENAI_API_KEY": ENV_KEY}, flag=FLAG_KEY)

    assert resolve_key(s, MemoryKeyStore(RING_KEY)) == ResolvedKey(FLAG_KEY, "flag")


def test_the_environment_wins_over_keyring_and_file(tmp_path: Path) -> None:
    s = settings(tmp_path, file_key=FILE_KEY, env={"OPENAI_API_KEY": ENV_KEY})

    assert resolve_key(s, MemoryKeyStore(RING_KEY)) == ResolvedKey(ENV_KEY, "env:OPENAI_API_KEY")


def test_voicecli_variable_counts_as_the_environment(tmp_path: Path) -> None:
    s = settings(tmp_path, file_key=FILE_KEY, env={"VOICECLI_API_API_KEY": ENV_KEY})

    resolved = resolve_key(s, MemoryKeyStore(RING_KEY))

    assert resolved == ResolvedKey(ENV_KEY, "env:VOICECLI_API_API_KEY")


def test_the_keyring_wins_over_the_file(tmp_path: Path) -> None:
    s = settings(tmp_path, file_key=FILE_KEY)

    assert resolve_key(s, MemoryKeyStore(RING_KEY)) == ResolvedKey(RING_KEY, "keyring")


def test_the_file_is_used_last_and_named(tmp_path: Path) -> None:
    s = settings(tmp_path, file_key=FILE_KEY)

    resolved = resolve_key(s, MemoryKeyStore())

    assert resolved == ResolvedKey(FILE_KEY, f"file:{tmp_path / 'config.toml'}")


def test_an_empty_variable_does_not_hide_the_keyring(tmp_path: Path) -> None:
    s = settings(tmp_path, env={"OPENAI_API_KEY": ""})

    assert resolve_key(s, MemoryKeyStore(RING_KEY)) == ResolvedKey(RING_KEY, "keyring")


def test_no_key_anywhere_is_none(tmp_path: Path) -> None:
    assert resolve_key(settings(tmp_path), MemoryKeyStore()) is None


class CountingStore(MemoryKeyStore):
    reads = 0

    def get(self) -> str | None:
        self.reads += 1
        return super().get()


def test_a_key_from_the_environment_does_not_touch_the_keyring(tmp_path: Path) -> None:
    # A locked keyring may prompt for a password: it must not when the key is elsewhere.
    store = CountingStore(RING_KEY)

    resolve_key(settings(tmp_path, env={"OPENAI_API_KEY": ENV_KEY}), store)

    assert store.reads == 0


# ---- masking ----------------------------------------------------------------------------------


def test_a_resolved_key_shows_only_its_mask() -> None:
    resolved = ResolvedKey(RING_KEY, "keyring")

    assert resolved.masked == "sk-…3333"
    assert RING_KEY not in repr(resolved)
    assert RING_KEY not in str(resolved)


# ---- the real keyring package -----------------------------------------------------------------


@pytest.fixture
def keyring_backend(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Restore whatever backend keyring had, after a test chose its own."""
    previous = keyring.get_keyring()
    yield
    keyring.set_keyring(previous)


@pytest.fixture
def no_keyring_backend(monkeypatch: pytest.MonkeyPatch, keyring_backend: None) -> None:
    """A machine with no keyring backend, selected the way a user would (environment)."""
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    keyring.core.init_backend()


@pytest.mark.usefixtures("no_keyring_backend")
def test_without_a_backend_reading_is_no_key_without_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert SystemKeyring().get() is None
    # Headless machines have no keyring: saying so on every run would be noise.
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    s = settings(tmp_path, file_key=FILE_KEY)
    assert resolve_key(s, SystemKeyring()) == ResolvedKey(FILE_KEY, f"file:{tmp_path}/config.toml")


@pytest.mark.usefixtures("no_keyring_backend")
def test_without_a_backend_storing_is_a_one_line_error() -> None:
    with pytest.raises(NoKeyringError) as raised:
        SystemKeyring().set(RING_KEY)

    assert raised.value.message == "no keyring backend on this machine"
    assert raised.value.exit_code == EXIT_USAGE
    assert raised.value.hint is not None and "OPENAI_API_KEY" in raised.value.hint
    assert RING_KEY not in raised.value.message


@pytest.mark.usefixtures("no_keyring_backend")
def test_without_a_backend_removing_is_the_same_error() -> None:
    with pytest.raises(NoKeyringError, match="^no keyring backend on this machine$"):
        SystemKeyring().delete()


class LockedKeyring(keyring.backend.KeyringBackend):
    """A backend that refuses every operation, like a locked keychain."""

    priority = 1

    def get_password(self, service: str, username: str) -> str | None:
        raise keyring.errors.KeyringLocked("the keyring is locked\n(unlock it first)")

    def set_password(self, service: str, username: str, password: str) -> None:
        raise keyring.errors.KeyringLocked(f"refusing {password}\nlocked")

    def delete_password(self, service: str, username: str) -> None:
        raise keyring.errors.KeyringLocked("locked")


@pytest.mark.usefixtures("keyring_backend")
def test_a_locked_keyring_falls_back_to_the_file_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    keyring.set_keyring(LockedKeyring())

    resolved = resolve_key(settings(tmp_path, file_key=FILE_KEY), SystemKeyring())

    assert resolved is not None and resolved.source.startswith("file:")
    assert any(r.levelno == logging.WARNING and "keyring" in r.message for r in caplog.records)


@pytest.mark.usefixtures("keyring_backend")
def test_a_locked_keyring_refusing_to_store_says_why_on_one_line_without_the_key() -> None:
    keyring.set_keyring(LockedKeyring())

    with pytest.raises(NoKeyringError) as raised:
        SystemKeyring().set(RING_KEY)

    message = raised.value.message
    assert message.startswith("cannot store the key in the keyring: refusing ")
    assert "\n" not in message
    assert RING_KEY not in message
