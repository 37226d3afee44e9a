"""Validation of realtime events against the openai SDK's types (our wire schema).

The SDK models accept unknown fields (``extra="allow"``) so that old SDKs can read new servers.
For what *we* put on the wire that is too lenient: the real service answers an unknown field with
``unknown_parameter`` and, over WebRTC, may drop the data channel. So after the SDK model accepts
an event we walk the validated tree and report every extra field, with its dotted path, the way
the service names it (``session.modalities``, ``item.name``).

Both sides use this: the client before it sends, ``voicecli serve`` on what it receives (to answer
like the real service) and on what it sends (so our stand-in never emits an off-schema event).
"""

from __future__ import annotations

import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import pydantic
from openai.types.realtime import realtime_client_event, realtime_server_event


@dataclass(frozen=True, slots=True)
class SchemaProblem:
    """Why an event does not fit the schema, in the service's own error vocabulary."""

    # invalid_event | invalid_value | missing_required_parameter | unknown_parameter | invalid_type
    code: str
    param: str | None
    message: str


EventTable = Mapping[str, type[pydantic.BaseModel]]


def _variants(alias: Any) -> dict[str, type[pydantic.BaseModel]]:
    union = typing.get_args(alias)[0]  # Annotated[Union[...], PropertyInfo]
    table: dict[str, type[pydantic.BaseModel]] = {}
    for model in typing.get_args(union):
        literal = model.model_fields["type"].annotation
        table[typing.get_args(literal)[0]] = model
    return table


@cache
def client_event_models() -> EventTable:
    """Event type → SDK model, for every GA client event."""
    return _variants(realtime_client_event.RealtimeClientEvent)


@cache
def server_event_models() -> EventTable:
    """Event type → SDK model, for every GA server event."""
    return _variants(realtime_server_event.RealtimeServerEvent)


def check_client_event(event: Mapping[str, Any]) -> SchemaProblem | None:
    """The first schema problem of a client event, or None when it is valid."""
    event, problem = _item_references(event)
    return problem or _check(event, client_event_models())


# A stand-in for an item reference while the SDK model checks the rest of response.input.
_REFERENCE_PLACEHOLDER = {"type": "message", "role": "user", "content": []}


def _item_references(event: Mapping[str, Any]) -> tuple[Mapping[str, Any], SchemaProblem | None]:
    """Check ``{"type": "item_reference", "id": …}`` entries of response.create's input.

    The service accepts them (realtime-protocol.md §4.4) but SDK 3.52's ResponseCreateEvent
    types ``input`` without them; each is checked here and replaced by a valid placeholder so
    the SDK model checks the rest with unchanged indexes.
    """
    response = event.get("response")
    if event.get("type") != "response.create" or not isinstance(response, dict):
        return event, None
    items = response.get("input")
    if not isinstance(items, list):
        return event, None
    checked: list[Any] = []
    for index, item in enumerate(items):
        if isinstance(item, dict) and item.get("type") == "item_reference":
            problem = _reference_problem(item, f"response.input[{index}]")
            if problem is not None:
                return event, problem
            item = _REFERENCE_PLACEHOLDER
        checked.append(item)
    return {**event, "response": {**response, "input": checked}}, None


def _reference_problem(item: Mapping[str, Any], path: str) -> SchemaProblem | None:
    if not isinstance(item.get("id"), str):
        return SchemaProblem(
            "missing_required_parameter", f"{path}.id", f"Missing required parameter: '{path}.id'."
        )
    extra = sorted(set(item) - {"type", "id"})
    if extra:
        return SchemaProblem(
            "unknown_parameter", f"{path}.{extra[0]}", f"Unknown parameter: '{path}.{extra[0]}'."
        )
    return None


# Fields the real service sends in session.created/updated that the SDK types the session
# without (it reuses the request model): realtime-protocol.md §4.3 "Server-side fields".
SERVER_SESSION_FIELDS = frozenset({"session.id", "session.object", "session.expires_at"})


def check_server_event(event: Mapping[str, Any]) -> SchemaProblem | None:
    """The first schema problem of a server event, or None when it is valid."""
    return _check(event, server_event_models(), SERVER_SESSION_FIELDS)


def check_object(
    model: type[pydantic.BaseModel], data: Mapping[str, Any], prefix: str = ""
) -> SchemaProblem | None:
    """Validate any JSON object (an HTTP body, a session) against one SDK model, strictly."""
    try:
        validated = model.model_validate(dict(data))
    except pydantic.ValidationError as exc:
        problem = _first_problem(exc)
        return _prefixed(problem, prefix)
    extra = next(_extra_paths(validated, prefix), None)
    if extra is not None:
        return SchemaProblem("unknown_parameter", extra, f"Unknown parameter: '{extra}'.")
    return None


def _prefixed(problem: SchemaProblem, prefix: str) -> SchemaProblem:
    if not prefix or problem.param is None:
        return problem
    param = _join(prefix, problem.param)
    return SchemaProblem(
        problem.code, param, problem.message.replace(f"'{problem.param}'", f"'{param}'")
    )


def _check(
    event: Mapping[str, Any], table: EventTable, allowed: frozenset[str] = frozenset()
) -> SchemaProblem | None:
    kind = event.get("type")
    if kind is None:
        return SchemaProblem("invalid_event", "type", "The 'type' field is missing.")
    model = table.get(kind) if isinstance(kind, str) else None
    if model is None:
        return SchemaProblem(
            "invalid_value",
            "type",
            f"Invalid value: '{kind}'. Supported values are: {_quoted(sorted(table))}.",
        )
    try:
        validated = model.model_validate(dict(event))
    except pydantic.ValidationError as exc:
        return _first_problem(exc)
    extra = next((p for p in _extra_paths(validated, "") if p not in allowed), None)
    if extra is not None:
        return SchemaProblem("unknown_parameter", extra, f"Unknown parameter: '{extra}'.")
    return None


def _quoted(names: list[str]) -> str:
    return ", ".join(f"'{n}'" for n in names)


def _extra_paths(obj: object, path: str) -> Iterator[str]:
    if isinstance(obj, pydantic.BaseModel):
        for key in obj.model_extra or {}:
            yield _join(path, key)
        for name in type(obj).model_fields:
            yield from _extra_paths(getattr(obj, name), _join(path, name))
    elif isinstance(obj, list | tuple):
        for index, value in enumerate(obj):
            yield from _extra_paths(value, f"{path}[{index}]")


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _first_problem(exc: pydantic.ValidationError) -> SchemaProblem:
    """Pick the error a person would want: from the union member the event was meant to be.

    Pydantic reports every member of a union (``item`` may be a message, a function call, …).
    Members whose ``type`` literal did not match are not what the sender meant; drop them.
    """
    errors = exc.errors()
    rejected = {_branch(e["loc"]) for e in errors if _is_type_mismatch(e)}
    chosen = [e for e in errors if _branch(e["loc"]) not in rejected]
    # No member's `type` fits: the type itself is what is wrong.
    error = chosen[0] if chosen else next((e for e in errors if _is_type_mismatch(e)), errors[0])
    param = _param(error["loc"])
    return SchemaProblem(_code(error["type"]), param, _message(error, param))


def _is_type_mismatch(error: Mapping[str, Any]) -> bool:
    loc = error["loc"]
    return error["type"] == "literal_error" and bool(loc) and loc[-1] == "type"


def _branch(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """The location up to and including the deepest union-member tag (a class name)."""
    last_tag = max((i for i, part in enumerate(loc) if _is_tag(part)), default=-1)
    return loc[: last_tag + 1]


def _is_tag(part: int | str) -> bool:
    # Union members appear in pydantic locations under their class name; fields are snake_case.
    return isinstance(part, str) and part[:1].isupper()


def _param(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif not _is_tag(part) and not part.startswith(("function-", "literal[")):
            path = _join(path, part)
    return path


def _code(pydantic_type: str) -> str:
    if pydantic_type == "missing":
        return "missing_required_parameter"
    if pydantic_type in {"literal_error", "enum", "less_than_equal", "greater_than_equal"}:
        return "invalid_value"
    return "invalid_type"


def _message(error: Mapping[str, Any], param: str) -> str:
    kind = error["type"]
    if kind == "missing":
        return f"Missing required parameter: '{param}'."
    if _code(kind) == "invalid_value":
        return f"Invalid value for '{param}': {error['msg']}."
    got = _json_kind(type(error.get("input")).__name__)
    return f"Invalid type for '{param}': expected {_expected(kind)}, but got {got} instead."


def _expected(pydantic_type: str) -> str:
    for prefix, expected in _EXPECTED:
        if pydantic_type.startswith(prefix):
            return expected
    return "another type"


_EXPECTED = (
    ("string", "a string"),
    ("int", "an integer"),
    ("float", "a number"),
    ("bool", "a boolean"),
    ("dict", "an object"),
    ("model", "an object"),
    ("list", "an array"),
)


def _json_kind(python_type: str) -> str:
    return {
        "dict": "an object",
        "list": "an array",
        "str": "a string",
        "int": "an integer",
        "float": "a number",
        "bool": "a boolean",
        "NoneType": "null",
    }.get(python_type, python_type)
