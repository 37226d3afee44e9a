"""The offline assistant's brain: a few rules over what the user said, and nothing else.

It knows the time and the date (asking the client's ``get_time`` tool when the session declares
it, so that the tool round trip is exercised; its own clock otherwise), simple arithmetic,
"repeat after me …" and help. Anything else is answered honestly with "I heard: …", so a user
can always tell what the recogniser made of their words.

Pure: no audio, no I/O. The same rules serve speech (the recogniser writes numbers as words)
and typed text (digits and + - * /).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from voicecli.server.assistant.numbers import format_number, read_number

TIME_TOOL = "get_time"
_MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
HELP_TEXT = (
    "I can tell you the time and the date, work out sums like what is two plus three, "
    "and repeat after you: say repeat after me, then your words."
)
READY_TEXT = "Hello, I am the offline voicecli assistant. Say help to hear what I can do."
EMPTY_TEXT = "I did not catch that. Say help to hear what I can do."
REPEAT_NOTHING = "Say repeat after me, then the words you want me to say."

# The phrasings each command is recognised by; the recogniser's command language model is
# trained on them too, so the two cannot drift apart.
TIME_PHRASES = ("what time is it", "what time is it now", "what is the time", "tell me the time")
DATE_PHRASES = (
    "what is the date",
    "what is the date today",
    "what is today's date",
    "what day is it",
    "what day is it today",
    "what day is today",
)
HELP_PHRASES = ("help", "help me", "what can you do")
REPEAT_PREFIX = "repeat after me"
ARITHMETIC_PREFIX = "what is"
OPERATOR_WORDS = ("plus", "minus", "times", "multiplied by", "divided by")

_TIME = re.compile(r"\bwhat time\b|\bthe time\b|\btime is it\b|\bclock\b")
_DATE = re.compile(r"\bdate\b|\b(what|which) day\b|\bday is (it|today)\b|\bwhat is today\b")
_HELP = re.compile(r"\bhelp\b|\bwhat can you do\b")
_REPEAT = re.compile(r"\brepeat after me\b[\s,:.]*(.*)")
_TOKEN = re.compile(r"\d+(?:\.\d+)?|[a-z]+(?:'[a-z]+)?|[-+*/×÷]")
_CONTRACTIONS = {"what's": "what is", "it's": "it is", "whats": "what is"}


class Intent(StrEnum):
    TIME = "time"
    DATE = "date"
    ARITHMETIC = "arithmetic"
    REPEAT = "repeat"
    HELP = "help"
    EMPTY = "empty"
    UNKNOWN = "unknown"


_PHRASES = {Intent.TIME: TIME_PHRASES, Intent.DATE: DATE_PHRASES, Intent.HELP: HELP_PHRASES}


@dataclass(frozen=True, slots=True)
class Say:
    text: str


@dataclass(frozen=True, slots=True)
class CallTool:
    name: str
    arguments: str = "{}"


Action = Say | CallTool


def normalize(text: str) -> str:
    """Lower case, contractions spelled out, words joined by single spaces."""
    lowered = re.sub(r"(?<=[a-z])-(?=[a-z])", " ", text.lower())  # "twenty-one"
    words = [_CONTRACTIONS.get(w, w) for w in _TOKEN.findall(lowered)]
    return " ".join(words)


def classify(text: str) -> Intent:
    said = normalize(text)
    if not said:
        return Intent.EMPTY
    if _REPEAT.search(said):
        return Intent.REPEAT
    if arithmetic(said) is not None:
        return Intent.ARITHMETIC
    for intent, pattern in ((Intent.TIME, _TIME), (Intent.DATE, _DATE), (Intent.HELP, _HELP)):
        if pattern.search(said):
            return intent
    return Intent.UNKNOWN


def is_clear_command(text: str) -> bool:
    """Whether ``text`` holds a whole command phrasing (or a sum), not just a command's word.

    The recogniser's command pass trusts its transcript only then: a command-shaped language
    model can turn unrelated speech into "... date", and that must not be answered as a date.
    """
    said = f" {normalize(text)} "
    intent = classify(said)
    if intent is Intent.ARITHMETIC:
        return True
    return any(f" {phrase} " in said for phrase in _PHRASES.get(intent, ()))


@dataclass(frozen=True, slots=True)
class Sum:
    left: float
    operator: str  # + - * /
    right: float

    def text(self) -> str:
        word = {"+": "plus", "-": "minus", "*": "times", "/": "divided by"}[self.operator]
        return f"{format_number(self.left)} {word} {format_number(self.right)}"

    def answer(self) -> str:
        if self.operator == "/" and self.right == 0:
            return "I cannot divide by zero."
        result = {
            "+": self.left + self.right,
            "-": self.left - self.right,
            "*": self.left * self.right,
            "/": self.left / self.right if self.right else 0.0,
        }[self.operator]
        return f"{self.text()} is {format_number(result)}."


def arithmetic(said: str) -> Sum | None:
    """The first "number operator number" in normalized text."""
    tokens = said.split()
    for start in range(len(tokens)):
        found = _sum_at(tokens, start)
        if found is not None:
            return found
    return None


def _sum_at(tokens: list[str], start: int) -> Sum | None:
    left = read_number(tokens, start)
    if left is None:
        return None
    operator = _operator(tokens, left[1])
    if operator is None:
        return None
    right = read_number(tokens, operator[1])
    if right is None:
        return None
    return Sum(left[0], operator[0], right[0])


def _operator(tokens: list[str], index: int) -> tuple[str, int] | None:
    if index >= len(tokens):
        return None
    word = tokens[index]
    following = tokens[index + 1] if index + 1 < len(tokens) else ""
    single = {"plus": "+", "+": "+", "minus": "-", "-": "-", "times": "*", "x": "*", "*": "*"}
    single |= {"×": "*", "over": "/", "/": "/", "÷": "/"}
    if word in single:
        return single[word], index + 1
    if word in ("multiplied", "divided") and following == "by":
        return ("*" if word == "multiplied" else "/"), index + 2
    return None


def _local_now() -> datetime:
    return datetime.now().astimezone()


class Brain:
    """One conversation's rules; remembers what a pending tool call was asked for."""

    def __init__(self, clock: Callable[[], datetime] = _local_now) -> None:
        self._clock = clock
        self._asked: Intent | None = None  # what the pending get_time call answers

    def hear(self, text: str | None, tools: Sequence[str] = ()) -> Action:
        """The answer to what the user said (a transcript or typed text)."""
        said = normalize(text or "")
        intent = classify(said)
        if intent in (Intent.TIME, Intent.DATE) and TIME_TOOL in tools:
            self._asked = intent
            return CallTool(TIME_TOOL)
        return Say(self._answer(intent, said))

    def _answer(self, intent: Intent, said: str) -> str:
        if intent is Intent.TIME:
            return time_text(self._clock().strftime("%H:%M"))
        if intent is Intent.DATE:
            now = self._clock()
            return date_text(now.year, now.month, now.day, _WEEKDAYS[now.weekday()])
        if intent is Intent.ARITHMETIC:
            found = arithmetic(said)
            return found.answer() if found is not None else EMPTY_TEXT
        if intent is Intent.REPEAT:
            return repeat_words(said) or REPEAT_NOTHING
        if intent is Intent.HELP:
            return HELP_TEXT
        if intent is Intent.EMPTY:
            return EMPTY_TEXT
        return f"I heard: {said}."

    def tool_results(self, outputs: Sequence[tuple[str, str]]) -> Say:
        """The answer once the client has run the tools called: (name, output) pairs."""
        asked, self._asked = self._asked, None
        answers = [
            self._clock_answer(output, asked) if name == TIME_TOOL else f"{name} said {output}."
            for name, output in outputs
        ]
        return Say(" ".join(answers) or READY_TEXT)

    def _clock_answer(self, output: str, asked: Intent | None) -> str:
        data = _json_object(output)
        if data is None or "error" in data:
            return f"The clock tool failed: {data['error'] if data else output}."
        try:
            if asked is Intent.DATE:
                year, month, day = (int(p) for p in str(data["date"]).split("-"))
                return date_text(year, month, day, str(data["weekday"]))
            return time_text(str(data["time"]))
        except (ValueError, KeyError, IndexError):
            return f"The clock tool said {output}."

    def ready(self) -> Say:
        return Say(READY_TEXT)


def _json_object(text: str) -> dict[str, object] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def repeat_words(said: str) -> str | None:
    match = _REPEAT.search(said)
    return match.group(1).strip() or None if match else None


def time_text(hh_mm: str) -> str:
    return f"It is {hh_mm}."


def date_text(year: int, month: int, day: int, weekday: str) -> str:
    return f"Today is {weekday}, {_MONTHS[month - 1]} {day}, {year}."
