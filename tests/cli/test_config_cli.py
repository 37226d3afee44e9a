"""`voicecli config show|path|init` as a user runs them."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner, Result

from voicecli import cli
from voicecli.config import example_config_text

FAKE_KEY = "sk-test-abcdefghijklmnop1234"


@pytest.fixture(autouse=True)
def _no_user_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A developer's real key, VOICECLI_* variables or config file must not reach the tests."""
    for name in list(os.environ):
        if name.startswith(("OPENAI_", "VOICECLI_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))


def make_app() -> typer.Typer:
    """The real command line, root options included."""
    return cli.app


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(make_app(), list(args), env=env)


def show_lines(result: Result) -> dict[str, str]:
    """`key = value  (source)` lines, by key."""
    return {line.split(" = ")[0].strip(): line for line in result.stdout.splitlines()}


# ---- show -------------------------------------------------------------------------------------


def test_show_prints_each_value_with_its_source(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[session]\nvoice = "cedar"\n', encoding="utf-8")

    result = run(
        "--config", str(config), "config", "show", env={"VOICECLI_TURNS_SILENCE_MS": "900"}
    )

    assert result.exit_code == 0, result.output
    lines = show_lines(result)
    assert lines["session.voice"].endswith(f'= "cedar"  (file:{config})')
    assert lines["turns.silence_ms"].endswith("= 900  (env:VOICECLI_TURNS_SILENCE_MS)")
    assert lines["session.model"].endswith('= "gpt-realtime-2.1"  (default)')


def test_show_never_prints_the_key_in_full() -> None:
    for args in (["config", "show"], ["config", "show", "--json"]):
        result = run(*args, env={"OPENAI_API_KEY": FAKE_KEY})

        assert result.exit_code == 0, result.output
        assert FAKE_KEY not in result.output
        assert "sk-…1234" in result.stdout


def test_show_json_has_value_and_source_per_key() -> None:
    result = run("config", "show", "--json", env={"VOICECLI_UI_PLAIN": "true"})

    assert result.exit_code == 0, result.output
    settings = json.loads(result.stdout)["settings"]
    assert settings["ui.plain"] == {"value": True, "source": "env:VOICECLI_UI_PLAIN"}
    assert settings["api.api_key"] == {"value": "(not set)", "source": "default"}
    assert settings["tools.builtin"] == {"value": ["get_time"], "source": "default"}


def test_show_with_broken_toml_exits_2_with_one_error_line(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[turns]\nsilence_ms = = 5\n", encoding="utf-8")

    result = run("--config", str(config), "config", "show")

    assert result.exit_code == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert errors[0].startswith(f"error: {config}:2: invalid TOML: ")
    assert "Traceback" not in result.output
    assert result.stdout == ""


def test_show_with_bad_value_exits_2_naming_key_and_value(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[turns]\nvad = "loud"\n', encoding="utf-8")

    result = run("--config", str(config), "config", "show")

    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == (
        f'error: {config}: turns.vad: expected one of server, semantic, off, got "loud"'
    )


def test_show_with_missing_named_file_exits_2(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"

    result = run("config", "show", env={"VOICECLI_CONFIG": str(missing)})

    assert result.exit_code == 2
    assert f"error: {missing}: config file not found" in result.stderr


# ---- path -------------------------------------------------------------------------------------


def test_path_prints_the_config_flag_path(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"

    result = run("--config", str(config), "config", "path")

    assert result.exit_code == 0
    assert result.stdout == f"{config}\n"
    assert "does not exist" in result.stderr


def test_path_prints_the_environment_path_when_no_flag(tmp_path: Path) -> None:
    config = tmp_path / "env.toml"
    config.write_text("", encoding="utf-8")

    result = run("config", "path", env={"VOICECLI_CONFIG": str(config)})

    assert result.stdout == f"{config}\n"
    assert result.stderr == ""


def test_path_defaults_to_the_user_config_dir(tmp_path: Path) -> None:
    result = run("config", "path")

    path = Path(result.stdout.strip())
    assert path.name == "config.toml"
    assert tmp_path in path.parents


# ---- init -------------------------------------------------------------------------------------


def test_init_writes_the_example_creating_directories(tmp_path: Path) -> None:
    config = tmp_path / "new" / "dir" / "config.toml"

    result = run("--config", str(config), "config", "init")

    assert result.exit_code == 0, result.output
    assert config.read_text(encoding="utf-8") == example_config_text()
    assert str(config) in result.stdout


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_init_creates_a_file_only_the_owner_can_read(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"

    run("--config", str(config), "config", "init")

    assert stat.S_IMODE(config.stat().st_mode) == 0o600


def test_init_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("# mine\n", encoding="utf-8")

    result = run("--config", str(config), "config", "init")

    assert result.exit_code == 2
    assert config.read_text(encoding="utf-8") == "# mine\n"
    assert result.stderr.splitlines() == [
        f"error: {config} already exists; not overwriting it",
        "hint: pass --force to replace it with the example",
    ]


def test_init_force_overwrites(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("# mine\n", encoding="utf-8")

    result = run("--config", str(config), "config", "init", "--force")

    assert result.exit_code == 0, result.output
    assert config.read_text(encoding="utf-8") == example_config_text()


def test_init_then_show_reports_the_file_as_source_of_every_key(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    run("--config", str(config), "config", "init")

    result = run("--config", str(config), "config", "show", "--json")

    sources = {item["source"] for item in json.loads(result.stdout)["settings"].values()}
    assert sources == {f"file:{config}"}
