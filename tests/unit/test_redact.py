"""voicecli.redact: keys never reach screens or logs in full."""

from __future__ import annotations

import io
import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voicecli.redact import RedactingFilter, mask_key, redact, redacting_handler

SK = "sk-abcdefghijklmnopqrstuvwxyzABCD1234"
SK_PROJ = "sk-proj-Ab3_dEf-GhIjKlMnOpQrStUvWxYz0123456789wxyz"
EK = "ek_68af0c1e2d3b4a5968778695a4b3c2d1"


# mask_key.


@pytest.mark.parametrize(
    ("key", "masked"),
    [
        (SK, "sk-…1234"),
        (SK_PROJ, "sk-…wxyz"),
        (EK, "ek_…c2d1"),
        ("short", "…"),
        ("12345678", "…"),
        ("", ""),
    ],
)
def test_mask_key(key: str, masked: str) -> None:
    assert mask_key(key) == masked


# redact.


@pytest.mark.parametrize("key", [SK, SK_PROJ, EK])
def test_redact_masks_each_kind_of_key(key: str) -> None:
    text = f"OPENAI_API_KEY={key} and again: '{key}'"
    out = redact(text)
    assert key not in out
    assert out == f"OPENAI_API_KEY={mask_key(key)} and again: '{mask_key(key)}'"


def test_redact_masks_bearer_tokens() -> None:
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlLXZhbHVl"
    out = redact(f"Authorization: Bearer {jwt}\nauthorization: bearer  {jwt}")
    assert jwt not in out
    assert out.count("Bearer ") == 1
    assert "bearer  " in out
    assert out.count("…") == 2


def test_redact_masks_a_key_in_a_bearer_header_once() -> None:
    out = redact(f'{{"Authorization": "Bearer {SK_PROJ}"}}')
    assert out == f'{{"Authorization": "Bearer {mask_key(SK_PROJ)}"}}'


def test_redact_leaves_ordinary_text_alone() -> None:
    text = "risk-assessment of the task-runner; ek_ short sk-abc; Bearer of bad news"
    assert redact(text) == text


@pytest.mark.parametrize(
    "text",
    [
        f"GET /v1/realtime/calls?api_key%3D{SK_PROJ}",  # a URL-encoded `=` ends in a letter
        f"\x1b[31m{SK_PROJ}\x1b[0m",  # an ANSI colour code ends in "m"
        f"Authorization:%20Bearer%20{EK}",
    ],
    ids=["url-encoded-query", "ansi-colour", "url-encoded-bearer"],
)
def test_redact_masks_keys_right_after_a_word_character(text: str) -> None:
    out = redact(text)
    assert SK_PROJ not in out
    assert EK not in out


KEY_BODY = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-",
    min_size=8,
    max_size=60,
)
KEYS = st.one_of(
    KEY_BODY.map(lambda body: "sk-" + body),
    KEY_BODY.map(lambda body: "sk-proj-" + body),
    KEY_BODY.map(lambda body: "ek_" + body),
)
# What a key follows in logs, dumps and headers: anything but a letter, digit or "_".
SEPARATORS = st.sampled_from([" ", "\n", "\t", "=", ":", '"', "'", "(", "[", "{", "/", ",", "-"])


@settings(max_examples=200, deadline=None)
@given(st.text(), SEPARATORS, KEYS, st.text(), st.booleans())
def test_a_key_in_any_text_never_appears_in_full(
    before: str, separator: str, key: str, after: str, bearer: bool
) -> None:
    lead = f"{separator}Bearer " if bearer else separator
    out = redact(before + lead + key + after)
    assert key not in out


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.characters(exclude_characters="sSeEbB")))
def test_text_without_key_prefixes_is_unchanged(text: str) -> None:
    assert redact(text) == text


# RedactingFilter.


def record(msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("voicecli.test", logging.WARNING, __file__, 1, msg, args, None)


def test_filter_redacts_a_key_passed_as_an_argument() -> None:
    rec = record("connecting with %s to %s", SK_PROJ, "https://api.openai.com")
    assert RedactingFilter().filter(rec) is True
    message = rec.getMessage()
    assert SK_PROJ not in message
    assert message == f"connecting with {mask_key(SK_PROJ)} to https://api.openai.com"


def test_filter_redacts_a_key_inside_a_mapping_argument() -> None:
    rec = logging.LogRecord(
        "t", logging.INFO, __file__, 1, "headers %(h)s", ({"h": f"Bearer {EK}"},), None
    )
    RedactingFilter().filter(rec)
    assert EK not in rec.getMessage()


def test_filter_keeps_records_without_secrets_untouched() -> None:
    rec = record("answered in %d ms", 42)
    assert RedactingFilter().filter(rec) is True
    assert rec.msg == "answered in %d ms"
    assert rec.args == (42,)


def logged(logger_name: str) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    logger = logging.getLogger(logger_name)
    logger.handlers[:] = [redacting_handler(stream)]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger, stream


def test_a_logger_with_the_filter_writes_redacted_lines() -> None:
    logger, stream = logged("voicecli.test.redact.lines")
    logger.warning("key %s rejected", SK)
    logger.info("Authorization: Bearer %s", EK)
    out = stream.getvalue()
    assert SK not in out
    assert EK not in out
    assert f"WARNING voicecli.test.redact.lines: key {mask_key(SK)} rejected" in out


def test_a_logged_exception_does_not_show_the_key() -> None:
    # The traceback logger.exception() appends must be redacted too, not only msg/args.
    logger, stream = logged("voicecli.test.redact.exc")
    try:
        raise RuntimeError(f"Incorrect API key provided: {SK_PROJ}")
    except RuntimeError:
        logger.exception("authentication failed")
    out = stream.getvalue()
    assert "authentication failed" in out
    assert SK_PROJ not in out
