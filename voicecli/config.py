"""Settings: defaults < TOML file < environment < flags, and where each effective value came from.

The file is ``--config PATH``, else ``$VOICECLI_CONFIG``, else ``config.toml`` in the platform's
user config directory. Only a file that was named explicitly has to exist.

Environment: ``OPENAI_API_KEY`` and ``OPENAI_BASE_URL``, and ``VOICECLI_<SECTION>_<KEY>`` for
every scalar key (``VOICECLI_TURNS_SILENCE_MS=800``); a ``VOICECLI_*`` name wins over an
``OPENAI_*`` one. Unknown ``VOICECLI_*`` variables are ignored: other tools may set their own.

Flags reach :func:`load_settings` as ``{"session.model": "gpt-x"}``; ``None`` means "not given",
so callers can pass every Typer option unconditionally. The source is named after the key's last
part (``flag:--silence-ms``), which is how the CLI is expected to spell its options.

Every error is a :class:`~voicecli.errors.ConfigError` with a one-line message that names the file
(and line) or the variable or flag: never a traceback, never a pydantic dump.
"""

from __future__ import annotations

import difflib
import json
import re
import tomllib
from collections.abc import Callable, Iterator, Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Literal, NamedTuple, get_origin

from platformdirs import user_config_path
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    PrivateAttr,
    ValidationError,
    field_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from voicecli.errors import ConfigError
from voicecli.redact import mask_key

CONFIG_ENV = "VOICECLI_CONFIG"
ENV_PREFIX = "VOICECLI_"
DEFAULT_SOURCE = "default"
NOT_SET = "(not set)"

# Keys whose values are shown masked wherever they appear (api.api_key, ICE TURN credentials).
_SECRET_NAMES = frozenset({"api_key", "credential"})


class _Model(BaseModel):
    # strict: a TOML string "500" for an integer is a mistake worth reporting, not coercing.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


class ApiSettings(_Model):
    base_url: str = "https://api.openai.com/v1"
    api_key: str = Field(default="", repr=False)
    provider: Literal["openai", "azure"] = "openai"
    azure_endpoint: str = ""
    azure_deployment: str = ""
    azure_api_version: str = ""


class AuthSettings(_Model):
    mode: Literal["direct", "ephemeral", "token_url"] = "direct"
    token_url: str = ""
    ephemeral_ttl_s: int = Field(default=600, ge=10, le=7200)


class SessionSettings(_Model):
    model: str = "gpt-realtime-2.1"
    voice: str = "marin"
    instructions: str = ""
    transcription_model: str = "gpt-4o-mini-transcribe"
    output_modalities: Literal["audio", "text"] = "audio"


class TurnSettings(_Model):
    vad: Literal["server", "semantic", "off"] = "server"
    eagerness: Literal["low", "medium", "high", "auto"] = "auto"
    silence_ms: int = Field(default=500, ge=0)
    threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    prefix_padding_ms: int = Field(default=300, ge=0)


class AudioSettings(_Model):
    input_device: str = ""
    output_device: str = ""
    duplex: Literal["full", "half"] = "full"


class IceServer(_Model):
    urls: list[str] = Field(min_length=1)
    username: str | None = None
    credential: str | None = None

    @field_validator("urls", mode="before")
    @classmethod
    def _one_url(cls, value: object) -> object:
        # `urls = "stun:..."` is allowed as in WebRTC's RTCIceServer; consumers always get a list.
        if isinstance(value, str):
            return [value]
        if not isinstance(value, list):
            raise PydanticCustomError("str_or_list", "expected a string or a list of strings")
        return value


class NetworkSettings(_Model):
    ice_servers: list[IceServer] = Field(default_factory=list)
    connect_timeout_s: float = Field(default=10.0, gt=0)
    liveness_timeout_s: float = Field(default=5.0, gt=0)
    transport: Literal["auto", "webrtc", "websocket"] = "auto"
    retry_budget_s: float = Field(default=60.0, ge=0)
    rollover_after_s: float = Field(default=3300.0, gt=0)


def _empty_object_schema() -> dict[str, JsonValue]:
    return {"type": "object", "properties": {}}


class CommandTool(_Model):
    name: str = Field(min_length=1)
    description: str = ""
    parameters: dict[str, JsonValue] = Field(default_factory=_empty_object_schema)
    command: list[str] = Field(min_length=1)
    timeout_s: float = Field(default=10.0, gt=0)


def _default_builtins() -> list[str]:
    return ["get_time"]


class ToolSettings(_Model):
    builtin: list[str] = Field(default_factory=_default_builtins)
    command: list[CommandTool] = Field(default_factory=list)


class ModelPrice(_Model):
    """USD per 1M tokens; a key left out keeps the built-in price."""

    text_in: float | None = Field(default=None, ge=0)
    text_cached_in: float | None = Field(default=None, ge=0)
    text_out: float | None = Field(default=None, ge=0)
    audio_in: float | None = Field(default=None, ge=0)
    audio_cached_in: float | None = Field(default=None, ge=0)
    audio_out: float | None = Field(default=None, ge=0)
    image_in: float | None = Field(default=None, ge=0)
    image_cached_in: float | None = Field(default=None, ge=0)


class ServeSettings(_Model):
    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535)
    responder: str = "echo"
    embedded: Literal["assistant", "echo"] = "assistant"


class UiSettings(_Model):
    plain: bool = False
    context_warn_tokens: int = Field(default=16000, ge=0)


class ConfigItem(NamedTuple):
    """One effective setting as `config show` presents it; secrets are already masked."""

    key: str
    value: JsonValue
    source: str

    @property
    def display(self) -> str:
        return json.dumps(self.value, ensure_ascii=False)


class Settings(_Model):
    api: ApiSettings = Field(default_factory=ApiSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    session: SessionSettings = Field(default_factory=SessionSettings)
    turns: TurnSettings = Field(default_factory=TurnSettings)
    audio: AudioSettings = Field(default_factory=AudioSettings)
    network: NetworkSettings = Field(default_factory=NetworkSettings)
    tools: ToolSettings = Field(default_factory=ToolSettings)
    pricing: dict[str, ModelPrice] = Field(default_factory=dict)
    serve: ServeSettings = Field(default_factory=ServeSettings)
    ui: UiSettings = Field(default_factory=UiSettings)

    # dotted key -> source, for keys that did not keep their default.
    _sources: dict[str, str] = PrivateAttr(default_factory=dict)

    def source(self, key: str) -> str:
        """Where ``key`` (e.g. ``"session.model"``) got its value: default, file:, env:, flag:."""
        if key not in SETTING_KEYS:
            raise KeyError(key)
        return self._sources.get(key, DEFAULT_SOURCE)

    def items(self) -> list[ConfigItem]:
        """Every key with its masked value and source, in file order."""
        dumped = self.model_dump(mode="json")
        return [
            ConfigItem(key, _masked(key.rsplit(".", 1)[-1], _lookup(dumped, key)), self.source(key))
            for key in SETTING_KEYS
        ]


def _is_model(annotation: object) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _setting_keys() -> tuple[str, ...]:
    """``section.key`` for each key of a section; a bare name for a free-form table (pricing)."""
    keys: list[str] = []
    for name, field in Settings.model_fields.items():
        section = field.annotation
        if isinstance(section, type) and issubclass(section, BaseModel):
            keys += [f"{name}.{key}" for key in section.model_fields]
        else:
            keys.append(name)
    return tuple(keys)


SETTING_KEYS = _setting_keys()


def _field_type(key: str) -> object:
    section, name = key.split(".")
    model = Settings.model_fields[section].annotation
    assert isinstance(model, type) and issubclass(model, BaseModel)
    return model.model_fields[name].annotation


def _scalar_type(annotation: object) -> type | None:
    """The Python type an environment string converts to, or None for lists and tables."""
    if get_origin(annotation) is Literal:
        return str  # the choice itself is checked by validation, which names the choices
    if annotation in (str, int, float, bool):
        assert isinstance(annotation, type)
        return annotation
    return None


def _env_names() -> dict[str, str]:
    """Variable name -> dotted key. OPENAI_* come first so that VOICECLI_* win when both are set."""
    names = {"OPENAI_API_KEY": "api.api_key", "OPENAI_BASE_URL": "api.base_url"}
    for key in SETTING_KEYS:
        if "." in key and _scalar_type(_field_type(key)) is not None:
            names[ENV_PREFIX + key.replace(".", "_").upper()] = key
    return names


ENV_NAMES = _env_names()


# ---- public entry points ----------------------------------------------------------------------


def config_file_path(config_path: Path | None, env: Mapping[str, str]) -> Path:
    """The file that would be read: --config, else $VOICECLI_CONFIG, else the user config dir."""
    if config_path is not None:
        return config_path.expanduser()
    named = env.get(CONFIG_ENV, "")
    if named:
        return Path(named).expanduser()
    # appauthor=False: on Windows, no extra "voicecli\voicecli" level.
    return user_config_path("voicecli", appauthor=False) / "config.toml"


def example_config_text() -> str:
    """The documented example file shipped in the package (also what `config init` writes)."""
    data = resources.files("voicecli").joinpath("data").joinpath("config.example.toml")
    return data.read_text(encoding="utf-8")


def load_settings(
    config_path: Path | None,
    env: Mapping[str, str],
    flags: Mapping[str, object] | None = None,
) -> Settings:
    """Merge defaults < file < environment < flags; raise ConfigError on any bad input.

    ``flags`` maps dotted keys (``"turns.silence_ms"``) to values already of the key's type; a
    ``None`` value is skipped. An unknown key in ``flags`` is a programming error (ValueError).
    """
    path = config_file_path(config_path, env)
    named_by = _named_by(config_path, env)
    data = _read_file(path, named_by)
    # The file alone first, so that its mistakes are reported against it even if overridden.
    _validate(data, {}, f"file:{path}")
    sources = dict.fromkeys(_keys_in(data), f"file:{path}")
    for key, value, source in [*_env_overrides(env), *_flag_overrides(flags or {})]:
        section, name = key.split(".")
        data.setdefault(section, {})[name] = value
        sources[key] = source
    settings = _validate(data, sources, DEFAULT_SOURCE)
    settings._sources = sources
    return settings


# ---- the file ---------------------------------------------------------------------------------


def _named_by(config_path: Path | None, env: Mapping[str, str]) -> str | None:
    """Which option named the file explicitly, if any: such a file must exist."""
    if config_path is not None:
        return "--config"
    return f"${CONFIG_ENV}" if env.get(CONFIG_ENV) else None


def _read_file(path: Path, named_by: str | None) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        if named_by is None:
            return {}
        raise ConfigError(
            f"{path}: config file not found (named by {named_by})",
            hint="create it with `voicecli config init`, or fix the path",
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror or exc}") from None
    data = _parse_toml(path, raw)
    _check_keys(data, Settings, path, "")
    return data


def _parse_toml(path: Path, raw: bytes) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8-sig")  # Notepad and friends may add a byte-order mark
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: invalid TOML: not UTF-8 text") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(_toml_error(path, text, str(exc))) from None


# tomllib (3.11) puts the position only in the message: "Invalid value (at line 3, column 7)".
_TOML_POSITION = re.compile(
    r"^(?P<what>.*) \(at (?:line (?P<line>\d+), column (?P<col>\d+)|end of document)\)$"
)


def _toml_error(path: Path, text: str, message: str) -> str:
    match = _TOML_POSITION.match(message)
    if match is None:
        return f"{path}: invalid TOML: {message}"
    what = match["what"][:1].lower() + match["what"][1:]
    if match["line"] is None:
        line = max(len(text.splitlines()), 1)
        return f"{path}:{line}: invalid TOML: {what} at the end of the file"
    return f"{path}:{match['line']}: invalid TOML: {what} at column {match['col']}"


def _check_keys(data: object, model: type[BaseModel], path: Path, prefix: str) -> None:
    """Reject unknown keys, listing the known ones; wrong types are left to validation."""
    if not isinstance(data, dict):
        return
    known = list(model.model_fields)
    for name, value in data.items():
        dotted = f"{prefix}.{name}" if prefix else name
        if name not in model.model_fields:
            raise _unknown_key(path, dotted, known)
        annotation = model.model_fields[name].annotation
        for child, child_model, child_prefix in _nested(value, annotation, dotted):
            _check_keys(child, child_model, path, child_prefix)


def _nested(value: object, annotation: object, prefix: str) -> Iterator[tuple[object, Any, str]]:
    """The tables inside ``value`` that are themselves models: a section, list items, map values."""
    if _is_model(annotation):
        yield value, annotation, prefix
        return
    args = getattr(annotation, "__args__", ())
    item = args[-1] if args else None
    if not _is_model(item):
        return
    if isinstance(value, list) and get_origin(annotation) is list:
        yield from ((child, item, f"{prefix}[{i}]") for i, child in enumerate(value))
    elif isinstance(value, dict) and get_origin(annotation) is dict:
        yield from ((child, item, f"{prefix}.{name}") for name, child in value.items())


def _unknown_key(path: Path, dotted: str, known: list[str]) -> ConfigError:
    name = dotted.rsplit(".", 1)[-1]
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"did you mean '{dotted[: -len(name)]}{close[0]}'?" if close else None
    return ConfigError(f"{path}: unknown key '{dotted}' (known: {', '.join(known)})", hint=hint)


def _keys_in(data: Mapping[str, Any]) -> list[str]:
    """The setting keys a (checked) file sets."""
    keys = []
    for key in SETTING_KEYS:
        section, _, name = key.partition(".")
        table = data.get(section)
        if (name == "" and section in data) or (isinstance(table, dict) and name in table):
            keys.append(key)
    return keys


# ---- environment and flags --------------------------------------------------------------------


def _parse_bool(text: str) -> bool:
    value = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}
    try:
        return value[text.strip().lower()]
    except KeyError:
        raise ValueError(text) from None


_CONVERTERS: dict[type, Callable[[str], object]] = {
    str: str,
    int: int,
    float: float,
    bool: _parse_bool,
}
_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}


def _env_overrides(env: Mapping[str, str]) -> Iterator[tuple[str, object, str]]:
    for name, key in ENV_NAMES.items():
        raw = env.get(name)
        # `OPENAI_BASE_URL=` is the usual shell way to unset it, not a request for an empty URL.
        if raw is None or (raw == "" and not name.startswith(ENV_PREFIX)):
            continue
        yield key, _convert(raw, key, name), f"env:{name}"


def _convert(raw: str, key: str, name: str) -> object:
    kind = _scalar_type(_field_type(key))
    assert kind is not None  # ENV_NAMES holds scalar keys only
    try:
        return _CONVERTERS[kind](raw)
    except ValueError:
        problem = f"expected {_TYPE_NAMES[kind]}, got {_show(raw)}"
        raise ConfigError(f"env {name}: {key}: {problem}", hint=_hint(f"env:{name}")) from None


def _flag_overrides(flags: Mapping[str, object]) -> Iterator[tuple[str, object, str]]:
    for key, value in flags.items():
        if "." not in key or key not in SETTING_KEYS:
            raise ValueError(f"unknown setting {key!r}")
        if value is not None:
            yield key, value, f"flag:--{key.rsplit('.', 1)[-1].replace('_', '-')}"


# ---- validation and its messages --------------------------------------------------------------


def _validate(data: dict[str, Any], sources: Mapping[str, str], fallback: str) -> Settings:
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        first = errors[0]
        source = sources.get(_key_of(first["loc"]), fallback)
        message = f"{_origin(source)}: {_dotted(first['loc'])}: {_describe(first)}"
        if len(errors) > 1:
            message += f" (and {len(errors) - 1} more)"
        raise ConfigError(message, hint=_hint(source)) from None


def _origin(source: str) -> str:
    """Where a value was given, for messages: a file's path, `env NAME` or `flag --name`."""
    kind, _, name = source.partition(":")
    return name if kind == "file" else f"{kind} {name}".strip()


def _hint(source: str) -> str | None:
    """The file keeps ConfigError's own hint; a variable or flag is fixed where it was given."""
    kind, _, name = source.partition(":")
    return {"env": f"fix or unset ${name}", "flag": f"fix {name}; see --help"}.get(kind)


def _key_of(loc: tuple[int | str, ...]) -> str:
    key = ".".join(str(part) for part in loc[:2])
    return key if key in SETTING_KEYS else str(loc[0])


def _dotted(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text.lstrip(".")


_EXPECTED = {
    "int_type": "an integer",
    "float_type": "a number",
    "string_type": "a string",
    "bool_type": "true or false",
    "list_type": "a list",
    "dict_type": "a table",
    "model_type": "a table",
    "finite_number": "a finite number",
    "str_or_list": "a string or a list of strings",
}
_BOUNDS = {
    "greater_than_equal": "a value of at least {ge}",
    "greater_than": "a value above {gt}",
    "less_than_equal": "a value of at most {le}",
    "less_than": "a value below {lt}",
    "too_short": "at least {min_length} item(s)",
}


def _describe(error: ErrorDetails) -> str:
    kind, ctx = error["type"], error.get("ctx", {})
    if kind == "missing":
        return "required key is missing"
    if kind == "literal_error":
        choices = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        expected = "one of " + ", ".join(choices)
    elif kind in _EXPECTED:
        expected = _EXPECTED[kind]
    elif kind in _BOUNDS:
        expected = _BOUNDS[kind].format(**ctx)
    else:
        return error["msg"][:1].lower() + error["msg"][1:]
    return f"expected {expected}, got {_show(error['input'])}"


def _show(value: object) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


# ---- display ----------------------------------------------------------------------------------


def _lookup(dumped: Mapping[str, Any], key: str) -> JsonValue:
    section, _, name = key.partition(".")
    value: JsonValue = dumped[section][name] if name else dumped[section]
    return value


def _masked(name: str, value: JsonValue) -> JsonValue:
    """Mask secrets by key name, at any depth (api.api_key, network.ice_servers[].credential)."""
    if name in _SECRET_NAMES and isinstance(value, str):
        return mask_key(value) if value else NOT_SET
    if isinstance(value, list):
        return [_masked(name, item) for item in value]
    if isinstance(value, dict):
        return {key: _masked(key, item) for key, item in value.items()}
    return value
