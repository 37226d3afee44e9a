"""Numbers as English words, both ways: what the recogniser hears and what the brain says.

The recogniser writes numbers as words ("twenty one"); typed text uses digits ("21"). Both are
read into values here; ``to_words`` exists for tests and the benchmark, which compare spoken
answers as the recogniser transcribes them.
"""

from __future__ import annotations

UNITS = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
TENS = ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_UNIT_VALUES = {word: value for value, word in enumerate(UNITS)}
_TEN_VALUES = {word: 10 * (index + 2) for index, word in enumerate(TENS)}
_SCALES = {"hundred": 100, "thousand": 1000, "million": 1_000_000}
NUMBER_WORDS = frozenset({*UNITS, *TENS, *_SCALES})


def read_number(tokens: list[str], start: int) -> tuple[float, int] | None:
    """The number starting at ``tokens[start]`` and the index after it, or None.

    Digits ("21", "3.5") are one token; words ("one hundred and five") may span several.
    """
    if start >= len(tokens):
        return None
    token = tokens[start]
    try:
        return float(token), start + 1
    except ValueError:
        pass
    return _read_words(tokens, start)


def _read_words(tokens: list[str], start: int) -> tuple[float, int] | None:
    total, current, index = 0, 0, start
    while index < len(tokens):
        word = tokens[index]
        if word in _UNIT_VALUES:
            current += _UNIT_VALUES[word]
        elif word in _TEN_VALUES:
            current += _TEN_VALUES[word]
        elif word in _SCALES and index > start:
            current, total = _scaled(word, current, total)
        elif word == "and" and index > start and _continues(tokens, index + 1):
            pass  # "one hundred and five"
        else:
            break
        index += 1
    if index == start:
        return None
    return float(total + current), index


def _scaled(word: str, current: int, total: int) -> tuple[int, int]:
    scale = _SCALES[word]
    if scale == 100:
        return max(current, 1) * 100, total
    return 0, total + max(current, 1) * scale


def _continues(tokens: list[str], index: int) -> bool:
    return index < len(tokens) and (tokens[index] in _UNIT_VALUES or tokens[index] in _TEN_VALUES)


def to_words(value: int) -> str:
    """A non-negative integer below a million in words: 21 → "twenty one"."""
    if value < 0 or value >= 1_000_000:
        raise ValueError(f"to_words takes 0..999999, got {value}")
    if value < 20:
        return UNITS[value]
    if value < 100:
        tens, units = divmod(value, 10)
        return TENS[tens - 2] + (f" {UNITS[units]}" if units else "")
    if value < 1000:
        hundreds, rest = divmod(value, 100)
        return f"{UNITS[hundreds]} hundred" + (f" {to_words(rest)}" if rest else "")
    thousands, rest = divmod(value, 1000)
    return f"{to_words(thousands)} thousand" + (f" {to_words(rest)}" if rest else "")


def format_number(value: float) -> str:
    """Digits as the brain says them: integers plainly, others to at most 2 decimals."""
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.2f}".rstrip("0").rstrip(".")
