"""`voicecli auth login|logout|status` as a user runs them, through the real keyring package.

The keyring holds its keys in a dict: a backend plugged in at keyring's own plugin seam
(``keyring.set_keyring``), so our code runs unchanged. Verification talks to the real local
server, run in-process.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import keyring
import keyring.backend
import keyring.core
import keyring.errors
import pytest
import typer
from typer.testing import CliRunner, Result

from voicecli import cli
from voicecli.auth.keys import KEYRING_SERVICE, KEYRING_USERNAME
from voicecli.errors import EXIT_AUTH, EXIT_USAGE
from voicecli.server.app import running_server
from voicecli.server.echo import EchoResponder
from voicecli.server.http import ServerConfig
from voicecli.server.keys import KeyStore

KEY = "sk-test-abcdefghijklmnop1234"
OTHER_KEY = "sk-test-qrstuvwxyzabcdef9999"
NO_KEY = "no key: voicecli will use the embedded local server\n"


class DictKeyring(keyring.backend.KeyringBackend):
    """An OS keyring that lives in a dict."""

    priority = 1

    def __init__(self) -> None:
        super().__init__()
        self.passwords: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.passwords.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.passwords[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if self.passwords.pop((service, username), None) is None:
            raise keyring.errors.PasswordDeleteError("not found")


@pytest.fixture(autouse=True)
def _no_user_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A developer's real key, VOICECLI_* variables or config file must not reach the tests."""
    for name in list(os.environ):
        if name.startswith(("OPENAI_", "VOICECLI_", "PYTHON_KEYRING")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))


@pytest.fixture(autouse=True)
def ring() -> Iterator[DictKeyring]:
    """Every test gets an empty keyring; the user's real one is never touched."""
    previous = keyring.get_keyring()
    backend = DictKeyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


def stored(ring: DictKeyring) -> str | None:
    return ring.passwords.get((KEYRING_SERVICE, KEYRING_USERNAME))


def make_app() -> typer.Typer:
    """The real command line, root options included."""
    return cli.app


def run(*args: str, env: dict[str, str] | None = None, input: str | None = None) -> Result:
    return CliRunner().invoke(make_app(), list(args), env=env, input=input)


# ---- login ------------------------------------------------------------------------------------


def test_login_from_stdin_stores_the_key_and_shows_it_masked(ring: DictKeyring) -> None:
    result = run("auth", "login", "--stdin", "--no-verify", input=f"{KEY}\n")

    assert result.exit_code == 0, result.output
    assert stored(ring) == KEY
    assert result.stdout == "stored key sk-…1234 in the keyring\n"


def test_login_prompt_does_not_echo_the_key(ring: DictKeyring) -> None:
    result = run("auth", "login", "--no-verify", input=f"{KEY}\n")

    assert result.exit_code == 0, result.output
    assert stored(ring) == KEY
    assert KEY not in result.output


def test_login_with_empty_input_stores_nothing(ring: DictKeyring) -> None:
    result = run("auth", "login", "--stdin", "--no-verify", input="\n")

    assert result.exit_code == EXIT_USAGE
    assert result.stderr.startswith("error: no key given\n")
    assert stored(ring) is None


def test_login_refuses_a_pasted_header(ring: DictKeyring) -> None:
    result = run("auth", "login", "--stdin", "--no-verify", input=f"Bearer {KEY}\n")

    assert result.exit_code == EXIT_USAGE
    assert "whitespace" in result.stderr
    assert KEY not in result.output
    assert stored(ring) is None


def test_login_notes_that_the_environment_key_still_wins(ring: DictKeyring) -> None:
    result = run(
        "auth",
        "login",
        "--stdin",
        "--no-verify",
        input=f"{KEY}\n",
        env={"OPENAI_API_KEY": OTHER_KEY},
    )

    assert result.exit_code == 0, result.output
    assert "OPENAI_API_KEY is set and takes precedence over the keyring" in result.stderr
    assert OTHER_KEY not in result.output


def test_login_without_a_keyring_backend_is_one_error_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    keyring.core.init_backend()  # as a fresh process on a machine without a keyring would

    result = run("auth", "login", "--stdin", "--no-verify", input=f"{KEY}\n")

    assert result.exit_code == EXIT_USAGE
    assert result.stderr.splitlines() == [
        "error: no keyring backend on this machine",
        "hint: set OPENAI_API_KEY in the environment instead (or api.api_key in the config)",
    ]
    assert result.stdout == ""


async def test_login_checks_the_key_with_the_endpoint_first(ring: DictKeyring) -> None:
    config = ServerConfig(responder=EchoResponder, keys=KeyStore.of([KEY], open=False))
    async with running_server(config) as server:
        env = {"OPENAI_BASE_URL": server.base_url}
        accepted = await asyncio.to_thread(run, "auth", "login", "--stdin", input=KEY, env=env)
        assert stored(ring) == KEY
        ring.passwords.clear()
        rejected = await asyncio.to_thread(
            run, "auth", "login", "--stdin", input=OTHER_KEY, env=env
        )

    assert accepted.exit_code == 0, accepted.output
    assert accepted.stdout.splitlines() == [
        f"{server.base_url} accepted the key",
        "stored key sk-…1234 in the keyring",
    ]
    assert rejected.exit_code == EXIT_AUTH
    assert rejected.stderr.startswith("error: 127.0.0.1:")
    assert "Incorrect API key provided" in rejected.stderr
    assert OTHER_KEY not in rejected.output
    assert stored(ring) is None


# ---- status -----------------------------------------------------------------------------------


def first_line(result: Result) -> str:
    return result.stdout.splitlines()[0]


def test_status_names_the_keyring_with_the_key_masked(ring: DictKeyring) -> None:
    run("auth", "login", "--stdin", "--no-verify", input=KEY)

    result = run("auth", "status")

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "key: sk-…1234  (keyring)",
        "endpoint: https://api.openai.com/v1",
        "auth mode: direct",
    ]


def test_status_prefers_the_environment_and_says_so(ring: DictKeyring) -> None:
    run("auth", "login", "--stdin", "--no-verify", input=KEY)

    result = run("auth", "status", env={"OPENAI_API_KEY": OTHER_KEY})

    assert first_line(result) == "key: sk-…9999  (env:OPENAI_API_KEY)"
    assert OTHER_KEY not in result.output and KEY not in result.output


def test_status_names_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[api]\napi_key = "{KEY}"\n', encoding="utf-8")

    result = run("--config", str(config), "auth", "status")

    assert first_line(result) == f"key: sk-…1234  (file:{config})"
    assert KEY not in result.output


def test_status_without_any_key_points_at_the_embedded_server() -> None:
    result = run("auth", "status")

    assert result.exit_code == 0, result.output
    assert result.stdout == NO_KEY


async def test_status_verify_asks_the_endpoint() -> None:
    config = ServerConfig(responder=EchoResponder, keys=KeyStore.of([KEY], open=False))
    async with running_server(config) as server:
        good = {"OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": KEY}
        bad = {"OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": OTHER_KEY}
        verified = await asyncio.to_thread(run, "auth", "status", "--verify", env=good)
        refused = await asyncio.to_thread(run, "auth", "status", "--verify", env=bad)

    assert verified.exit_code == 0, verified.output
    assert verified.stdout.splitlines()[-1].startswith("verified: the endpoint accepted the key")
    assert KEY not in verified.output
    assert refused.exit_code == EXIT_AUTH
    assert "Incorrect API key provided" in refused.stderr
    assert OTHER_KEY not in refused.output


# ---- logout -----------------------------------------------------------------------------------


def test_logout_removes_the_key_and_status_then_has_none(ring: DictKeyring) -> None:
    run("auth", "login", "--stdin", "--no-verify", input=KEY)

    result = run("auth", "logout")

    assert result.exit_code == 0, result.output
    assert result.stdout == "removed the key from the keyring\n"
    assert stored(ring) is None
    assert run("auth", "status").stdout == NO_KEY


def test_logout_without_a_stored_key_says_so() -> None:
    result = run("auth", "logout")

    assert result.exit_code == 0, result.output
    assert result.stdout == "no key in the keyring\n"


def test_logout_mentions_a_key_that_remains_elsewhere(ring: DictKeyring) -> None:
    run("auth", "login", "--stdin", "--no-verify", input=KEY)

    result = run("auth", "logout", env={"OPENAI_API_KEY": OTHER_KEY})

    assert stored(ring) is None
    assert "note: voicecli still has a key (sk-…9999) from OPENAI_API_KEY" in result.stderr
    assert OTHER_KEY not in result.output
