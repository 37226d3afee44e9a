"""Settings: precedence and sources, the error messages a user reads, the example file."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from voicecli.config import (
    CommandTool,
    IceServer,
    ModelPrice,
    Settings,
    config_file_path,
    example_config_text,
    load_settings,
)
from voicecli.errors import EXIT_USAGE, ConfigError

FAKE_KEY = "sk-test-abcdefghijklmnop1234"
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _no_user_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A developer's real key, VOICECLI_* variables or config file must not reach the tests."""
    for name in list(os.environ):
        if name.startswith(("OPENAI_", "VOICECLI_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def load_error(config: Path | None, env: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_settings(config, env or {})
    return caught.value


# ---- precedence and sources -------------------------------------------------------------------


def test_without_file_env_or_flags_every_value_is_the_default() -> None:
    settings = load_settings(None, {})

    assert settings.session.model == "gpt-realtime-2.1"
    assert settings.tools.builtin == ["get_time"]
    assert {source for _, _, source in settings.items()} == {"default"}


def test_file_overrides_defaults_and_names_the_file(tmp_path: Path) -> None:
    config = write(tmp_path / "c.toml", '[session]\nvoice = "cedar"\n')

    settings = load_settings(config, {})

    assert settings.session.voice == "cedar"
    assert settings.source("session.voice") == f"file:{config}"
    assert settings.source("session.model") == "default"


def test_environment_overrides_file(tmp_path: Path) -> None:
    config = write(tmp_path / "c.toml", "[turns]\nsilence_ms = 700\n")

    settings = load_settings(config, {"VOICECLI_TURNS_SILENCE_MS": "900"})

    assert settings.turns.silence_ms == 900
    assert settings.source("turns.silence_ms") == "env:VOICECLI_TURNS_SILENCE_MS"


def test_flags_override_environment_and_file(tmp_path: Path) -> None:
    config = write(tmp_path / "c.toml", '[session]\nmodel = "from-file"\n')
    env = {"VOICECLI_SESSION_MODEL": "from-env"}

    settings = load_settings(config, env, {"session.model": "from-flag"})

    assert settings.session.model == "from-flag"
    assert settings.source("session.model") == "flag:--model"


def test_flag_given_as_none_leaves_the_lower_layer_in_place() -> None:
    env = {"VOICECLI_TURNS_SILENCE_MS": "900"}

    settings = load_settings(None, env, {"turns.silence_ms": None, "turns.threshold": 0.7})

    assert settings.turns.silence_ms == 900
    assert settings.turns.threshold == 0.7
    assert settings.source("turns.threshold") == "flag:--threshold"


def test_flag_source_uses_dashes() -> None:
    settings = load_settings(None, {}, {"turns.silence_ms": 800})

    assert settings.source("turns.silence_ms") == "flag:--silence-ms"


def test_unknown_flag_key_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="session.modle"):
        load_settings(None, {}, {"session.modle": "x"})


def test_openai_variables_set_key_and_base_url() -> None:
    env = {"OPENAI_API_KEY": FAKE_KEY, "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}

    settings = load_settings(None, env)

    assert settings.api.api_key == FAKE_KEY
    assert settings.source("api.api_key") == "env:OPENAI_API_KEY"
    assert settings.api.base_url == "http://127.0.0.1:9/v1"
    assert settings.source("api.base_url") == "env:OPENAI_BASE_URL"


def test_voicecli_variable_wins_over_openai_variable() -> None:
    env = {"OPENAI_BASE_URL": "http://a/v1", "VOICECLI_API_BASE_URL": "http://b/v1"}

    settings = load_settings(None, env)

    assert settings.api.base_url == "http://b/v1"
    assert settings.source("api.base_url") == "env:VOICECLI_API_BASE_URL"


def test_empty_openai_variable_counts_as_unset() -> None:
    settings = load_settings(None, {"OPENAI_BASE_URL": ""})

    assert settings.api.base_url == "https://api.openai.com/v1"
    assert settings.source("api.base_url") == "default"


def test_empty_voicecli_string_variable_is_a_real_value() -> None:
    # "" is how a user turns input transcription off.
    settings = load_settings(None, {"VOICECLI_SESSION_TRANSCRIPTION_MODEL": ""})

    assert settings.session.transcription_model == ""


@pytest.mark.parametrize(
    ("name", "raw", "key", "expected"),
    [
        ("VOICECLI_UI_PLAIN", "yes", "ui.plain", True),
        ("VOICECLI_UI_PLAIN", "0", "ui.plain", False),
        ("VOICECLI_UI_PLAIN", "TRUE", "ui.plain", True),
        ("VOICECLI_NETWORK_CONNECT_TIMEOUT_S", "2.5", "network.connect_timeout_s", 2.5),
        ("VOICECLI_SERVE_PORT", "8080", "serve.port", 8080),
    ],
)
def test_environment_strings_become_the_key_type(
    name: str, raw: str, key: str, expected: object
) -> None:
    values = {item.key: item.value for item in load_settings(None, {name: raw}).items()}

    assert values[key] == expected
    assert type(values[key]) is type(expected)


def test_unknown_voicecli_variables_are_ignored() -> None:
    settings = load_settings(None, {"VOICECLI_HOME": "/x", "VOICECLI_NOPE_THING": "1"})

    assert {source for _, _, source in settings.items()} == {"default"}


# ---- which file -------------------------------------------------------------------------------


def test_config_flag_beats_environment_variable(tmp_path: Path) -> None:
    chosen = tmp_path / "flag.toml"

    assert config_file_path(chosen, {"VOICECLI_CONFIG": str(tmp_path / "env.toml")}) == chosen


def test_environment_variable_names_the_file(tmp_path: Path) -> None:
    named = write(tmp_path / "env.toml", '[serve]\nresponder = "other"\n')

    settings = load_settings(None, {"VOICECLI_CONFIG": str(named)})

    assert config_file_path(None, {"VOICECLI_CONFIG": str(named)}) == named
    assert settings.serve.responder == "other"
    assert settings.source("serve.responder") == f"file:{named}"


def test_default_file_lives_in_the_user_config_dir(tmp_path: Path) -> None:
    path = config_file_path(None, {})

    assert path.name == "config.toml"
    assert path.parent.name == "voicecli"
    assert tmp_path in path.parents


def test_default_file_is_read_when_present(tmp_path: Path) -> None:
    default = config_file_path(None, {})
    default.parent.mkdir(parents=True)
    write(default, "[ui]\nplain = true\n")

    assert load_settings(None, {}).ui.plain is True


def test_missing_explicit_file_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"

    for config, env in [(missing, {}), (None, {"VOICECLI_CONFIG": str(missing)})]:
        error = load_error(config, env)
        assert str(missing) in error.message
        assert "not found" in error.message
        assert error.exit_code == EXIT_USAGE


# ---- error messages ---------------------------------------------------------------------------


def test_broken_toml_names_file_and_line(tmp_path: Path) -> None:
    config = write(tmp_path / "c.toml", '[session]\nmodel = "x"\nvoice = = "y"\n')

    error = load_error(config)

    assert re.fullmatch(rf"{re.escape(str(config))}:3: invalid TOML: .+", error.message)
    assert "\n" not in error.message


def test_unclosed_toml_at_end_of_file_names_the_last_line(tmp_path: Path) -> None:
    config = write(tmp_path / "c.toml", "[tools]\nbuiltin = [\n")

    assert load_error(config).message.startswith(f"{config}:2: invalid TOML: ")


def test_unknown_key_lists_the_known_keys(tmp_path: Path) -> None:
    config = write(tmp_path / "c.toml", '[session]\nmodle = "x"\n')

    error = load_error(config)

    assert error.message == (
        f"{config}: unknown key 'session.modle' (known: model, voice, instructions, "
        "transcription_model, output_modalities)"
    )
    assert error.hint == "did you mean 'session.model'?"


def test_unknown_section_is_reported(tmp_path: Path) -> None:
    config = write(tmp_path / "c.toml", '[sesion]\nmodel = "x"\n')

    assert load_error(config).message.startswith(f"{config}: unknown key 'sesion' (known: api, ")


def test_unknown_key_inside_a_tool_table_is_reported(tmp_path: Path) -> None:
    config = write(
        tmp_path / "c.toml", '[[tools.command]]\nname = "t"\ncommand = ["true"]\ntimout_s = 1\n'
    )

    assert load_error(config).message.startswith(
        f"{config}: unknown key 'tools.command[0].timout_s' (known: name, description, "
    )


def test_wrong_type_names_file_key_and_value(tmp_path: Path) -> None:
    config = write(tmp_path / "c.toml", '[turns]\nsilence_ms = "abc"\n')

    assert load_error(config).message == (
        f'{config}: turns.silence_ms: expected an integer, got "abc"'
    )


def test_bad_choice_lists_the_choices(tmp_path: Path) -> None:
    config = write(tmp_path / "c.toml", '[turns]\nvad = "loud"\n')

    assert load_error(config).message == (
        f'{config}: turns.vad: expected one of server, semantic, off, got "loud"'
    )


def test_out_of_range_value_is_reported(tmp_path: Path) -> None:
    config = write(tmp_path / "c.toml", "[auth]\nephemeral_ttl_s = 5\n")

    assert load_error(config).message == (
        f"{config}: auth.ephemeral_ttl_s: expected a value of at least 10, got 5"
    )


def test_error_in_a_list_item_names_its_position(tmp_path: Path) -> None:
    config = write(tmp_path / "c.toml", "[network]\nice_servers = [{ urls = 3 }]\n")

    assert load_error(config).message == (
        f"{config}: network.ice_servers[0].urls: expected a string or a list of strings, got 3"
    )


def test_missing_required_tool_key_is_reported(tmp_path: Path) -> None:
    config = write(tmp_path / "c.toml", '[[tools.command]]\nname = "t"\n')

    assert (
        load_error(config).message == f"{config}: tools.command[0].command: required key is missing"
    )


def test_file_error_is_reported_even_when_the_environment_overrides_the_key(
    tmp_path: Path,
) -> None:
    config = write(tmp_path / "c.toml", '[turns]\nsilence_ms = "abc"\n')

    error = load_error(config, {"VOICECLI_TURNS_SILENCE_MS": "800"})

    assert error.message.startswith(f"{config}: turns.silence_ms:")


def test_bad_environment_value_names_the_variable() -> None:
    error = load_error(None, {"VOICECLI_TURNS_SILENCE_MS": "abc"})

    assert error.message == (
        'env VOICECLI_TURNS_SILENCE_MS: turns.silence_ms: expected an integer, got "abc"'
    )
    assert error.hint == "fix or unset $VOICECLI_TURNS_SILENCE_MS"


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("VOICECLI_UI_PLAIN", "maybe"),
        ("VOICECLI_TURNS_VAD", "loud"),
        ("VOICECLI_TURNS_THRESHOLD", "2"),
    ],
)
def test_every_kind_of_bad_environment_value_names_the_variable(name: str, raw: str) -> None:
    assert load_error(None, {name: raw}).message.startswith(f"env {name}: ")


def test_bad_flag_value_names_the_flag() -> None:
    with pytest.raises(ConfigError, match=r"^flag --threshold: turns.threshold: expected a value"):
        load_settings(None, {}, {"turns.threshold": 1.5})


def test_file_that_is_not_utf8_is_reported_with_its_line(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_bytes(b'[session]\nvoice = "\xff"\n')

    assert load_error(config).message == f"{config}:2: invalid TOML: not UTF-8 text"


# ---- display ----------------------------------------------------------------------------------


def test_items_mask_the_api_key() -> None:
    settings = load_settings(None, {"OPENAI_API_KEY": FAKE_KEY})

    shown = {key: (value, source) for key, value, source in settings.items()}

    assert shown["api.api_key"] == ("sk-…1234", "env:OPENAI_API_KEY")
    assert FAKE_KEY not in repr(settings.items())


def test_items_show_an_unset_key_as_not_set() -> None:
    shown = {item.key: item.value for item in load_settings(None, {}).items()}

    assert shown["api.api_key"] == "(not set)"


def test_items_mask_turn_credentials(tmp_path: Path) -> None:
    config = write(
        tmp_path / "c.toml",
        '[network]\nice_servers = [{ urls = "turn:t.example:3478", username = "u",'
        ' credential = "turn-secret-123456" }]\n',
    )

    shown = {item.key: item.value for item in load_settings(config, {}).items()}

    assert shown["network.ice_servers"] == [
        {"urls": ["turn:t.example:3478"], "username": "u", "credential": "tur…3456"}
    ]


def test_source_of_an_unknown_key_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        Settings().source("session.modle")


# ---- the example file -------------------------------------------------------------------------


def example_path(tmp_path: Path) -> Path:
    return write(tmp_path / "example.toml", example_config_text())


def test_example_file_loads_to_exactly_the_defaults(tmp_path: Path) -> None:
    assert load_settings(example_path(tmp_path), {}).model_dump() == Settings().model_dump()


def test_example_file_sets_every_key_explicitly(tmp_path: Path) -> None:
    # Loading to the defaults and setting every key means each default is written down.
    settings = load_settings(example_path(tmp_path), {})

    assert [key for key, _, source in settings.items() if source == "default"] == []


@pytest.mark.parametrize("model", [IceServer, CommandTool, ModelPrice])
def test_example_file_documents_every_key_of_repeated_tables(model: type[BaseModel]) -> None:
    # These tables are empty by default, so their keys can only appear in commented examples.
    commented = "\n".join(
        line for line in example_config_text().splitlines() if line.lstrip().startswith("#")
    )

    missing = [key for key in model.model_fields if not re.search(rf"\b{key}\s*=", commented)]

    assert missing == []


def test_example_file_documents_each_key_with_a_comment() -> None:
    lines = example_config_text().splitlines()
    keys = [i for i, line in enumerate(lines) if re.match(r"^[a-z_]+\s*=", line)]

    undocumented = [lines[i] for i in keys if not lines[i - 1].lstrip().startswith("#")]

    assert undocumented == []


def test_example_file_holds_no_real_looking_key() -> None:
    assert re.search(r"\b(sk-|ek_)[A-Za-z0-9_\-]{8,}", example_config_text()) is None


def test_repository_root_example_is_the_packaged_one() -> None:
    root_example = REPO_ROOT / "config.example.toml"

    assert root_example.is_symlink()
    assert root_example.read_text(encoding="utf-8") == example_config_text()
