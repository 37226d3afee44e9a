"""The assistant's brain and its number words: what the user hears back for what they said."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from voicecli.server.assistant.brain import (
    HELP_TEXT,
    READY_TEXT,
    TIME_TOOL,
    Brain,
    CallTool,
    Intent,
    Say,
    classify,
    is_clear_command,
    normalize,
)
from voicecli.server.assistant.evaluation import word_error_rate, word_errors
from voicecli.server.assistant.numbers import format_number, read_number, to_words

NOW = datetime(2026, 11, 20, 14, 5, 30, tzinfo=UTC)  # a Friday


def brain() -> Brain:
    return Brain(clock=lambda: NOW)


def said(text: str, tools: tuple[str, ...] = ()) -> str:
    action = brain().hear(text, tools)
    assert isinstance(action, Say), action
    return action.text


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("what is two plus three", "2 plus 3 is 5."),
        ("what is seven times eight", "7 times 8 is 56."),
        ("what is ten minus four", "10 minus 4 is 6."),
        ("what is twelve divided by three", "12 divided by 3 is 4."),
        ("what's twenty one multiplied by two", "21 times 2 is 42."),
        ("seven divided by two", "7 divided by 2 is 3.5."),
        ("What is 12/4?", "12 divided by 4 is 3."),
        ("2+3", "2 plus 3 is 5."),
        ("what is 1.5 * 4", "1.5 times 4 is 6."),
        ("one hundred and five minus five", "105 minus 5 is 100."),
        ("twenty-one plus one", "21 plus 1 is 22."),
        ("what is ten divided by three", "10 divided by 3 is 3.33."),
        ("what is five divided by zero", "I cannot divide by zero."),
    ],
)
def test_sums_spoken_or_typed_are_worked_out(text: str, answer: str) -> None:
    assert said(text) == answer


def test_time_without_the_tool_comes_from_its_own_clock() -> None:
    assert said("what time is it") == "It is 14:05."
    assert said("What's the time?") == "It is 14:05."


def test_date_without_the_tool_comes_from_its_own_clock() -> None:
    assert said("what is the date today") == "Today is Friday, November 20, 2026."
    assert said("what day is it") == "Today is Friday, November 20, 2026."


def test_time_with_the_tool_calls_it_and_answers_from_its_output() -> None:
    mind = brain()
    assert mind.hear("what time is it", (TIME_TOOL, "other")) == CallTool(TIME_TOOL, "{}")
    output = json.dumps({"time": "09:41", "date": "2027-01-02", "weekday": "Saturday"})
    assert mind.tool_results([(TIME_TOOL, output)]) == Say("It is 09:41.")


def test_date_with_the_tool_answers_the_date_not_the_time() -> None:
    mind = brain()
    assert isinstance(mind.hear("what is today's date", (TIME_TOOL,)), CallTool)
    output = json.dumps({"time": "09:41", "date": "2027-01-02", "weekday": "Saturday"})
    assert mind.tool_results([(TIME_TOOL, output)]) == Say("Today is Saturday, January 2, 2027.")


@pytest.mark.parametrize(
    ("output", "answer"),
    [
        ('{"error": "unknown timezone"}', "The clock tool failed: unknown timezone."),
        ("not json", "The clock tool failed: not json."),
        ('{"time": 5}', "It is 5."),
        ('{"date": "x"}', 'The clock tool said {"date": "x"}.'),
    ],
)
def test_a_broken_clock_tool_is_reported_not_crashed_on(output: str, answer: str) -> None:
    mind = brain()
    mind.hear("what time is it", (TIME_TOOL,))
    assert mind.tool_results([(TIME_TOOL, output)]) == Say(answer)


def test_other_tool_outputs_are_read_out() -> None:
    assert brain().tool_results([("weather", "sunny")]) == Say("weather said sunny.")


def test_repeat_after_me_says_the_rest() -> None:
    assert said("repeat after me the weather is nice") == "the weather is nice"
    assert said("Repeat after me: hello world") == "hello world"
    assert said("repeat after me") == "Say repeat after me, then the words you want me to say."


def test_help_lists_what_it_can_do() -> None:
    assert said("help") == HELP_TEXT
    assert said("what can you do") == HELP_TEXT


def test_anything_else_is_answered_with_what_was_heard() -> None:
    assert said("open the pod bay doors") == "I heard: open the pod bay doors."
    assert said("I had a great day at work") == "I heard: i had a great day at work."


def test_nothing_heard_says_so() -> None:
    assert said("") == "I did not catch that. Say help to hear what I can do."
    assert said("   ...  ") == "I did not catch that. Say help to hear what I can do."


def test_a_bare_response_gets_the_greeting() -> None:
    assert brain().ready() == Say(READY_TEXT)


@pytest.mark.parametrize(
    ("text", "intent", "clear"),
    [
        ("what time is it", Intent.TIME, True),
        ("what time is it of", Intent.TIME, True),
        ("i what like accident off date", Intent.DATE, False),  # a command word, not a command
        ("what is seven times eight", Intent.ARITHMETIC, True),
        ("the sum of seven", Intent.UNKNOWN, False),
        ("help", Intent.HELP, True),
        ("repeat after me hi", Intent.REPEAT, False),
        ("how are you today", Intent.UNKNOWN, False),
        ("", Intent.EMPTY, False),
    ],
)
def test_classify_and_clear_commands(text: str, intent: Intent, clear: bool) -> None:
    assert classify(text) is intent
    assert is_clear_command(text) is clear


def test_normalize_spells_out_contractions_and_drops_punctuation() -> None:
    assert normalize("What's the TIME, please?") == "what is the time please"


@pytest.mark.parametrize(
    ("tokens", "value", "end"),
    [
        ("twenty one apples", 21.0, 2),
        ("one hundred and five", 105.0, 4),
        ("two thousand twenty six", 2026.0, 4),
        ("3.5 kg", 3.5, 1),
        ("and one", None, 0),
        ("hundred", None, 0),
    ],
)
def test_read_number(tokens: str, value: float | None, end: int) -> None:
    found = read_number(tokens.split(), 0)
    assert (found is None) if value is None else found == (value, end)


@pytest.mark.parametrize("value", [0, 7, 13, 20, 21, 99, 100, 105, 999, 2026, 999_999])
def test_to_words_reads_back(value: int) -> None:
    words = to_words(value).split()
    assert read_number(words, 0) == (float(value), len(words))


def test_to_words_refuses_what_it_cannot_say() -> None:
    with pytest.raises(ValueError, match="0..999999"):
        to_words(-1)


def test_format_number() -> None:
    assert [format_number(v) for v in (3.0, 3.5, 10 / 3, -2.0)] == ["3", "3.5", "3.33", "-2"]


def test_word_error_rate() -> None:
    assert word_errors("what time is it", "what time is it") == (0, 4)
    assert word_errors("what time is it", "what is it now") == (2, 4)  # 1 deletion, 1 insertion
    assert word_errors("what's the time", "what is the time") == (0, 4)
    assert word_error_rate([("a b c d", "a b c"), ("e f", "e g")]) == pytest.approx(2 / 6)
