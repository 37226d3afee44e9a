"""The cost meter: token counts from ``usage`` objects, priced per model, in exact decimals.

Prices are USD per 1M tokens (``audio_per_minute``: USD per minute of transcribed audio). The
built-in table is data, ``voicecli/data/prices.toml``; the config's ``[pricing."<model>"]`` tables
override it key by key.

A price that is not known is ``None``, never zero: the meter then shows tokens without a dollar
amount instead of a bill that looks exact and is not. That holds for a whole model (no entry) and
for one kind of usage (e.g. image tokens on a model whose image price is unknown).

Lookup is by exact model name. Stripping a date suffix (``-2025-08-28``) was considered and
rejected: snapshots of one model have been priced differently (gpt-4o-realtime-preview's
2024-10-01 and 2024-12-17 audio prices differ), so a guess could show the wrong bill. Known
snapshots are listed in the table; others can be priced in the config.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache
from importlib import resources
from typing import Any

import pydantic

# What a usage may arrive as: the event's JSON object, or the SDK's parsed model of it.
UsageLike = Mapping[str, Any] | pydantic.BaseModel
# A config override: voicecli.config.ModelPrice, or a plain mapping of the same keys.
PriceOverride = Mapping[str, float | None] | pydantic.BaseModel

PER_MILLION = Decimal(1_000_000)
SECONDS_PER_MINUTE = Decimal(60)


@dataclass(frozen=True, slots=True)
class Prices:
    """One model's prices; ``None`` means unknown (not free)."""

    text_in: Decimal | None = None
    text_cached_in: Decimal | None = None
    text_out: Decimal | None = None
    audio_in: Decimal | None = None
    audio_cached_in: Decimal | None = None
    audio_out: Decimal | None = None
    image_in: Decimal | None = None
    image_cached_in: Decimal | None = None
    audio_per_minute: Decimal | None = None


PRICE_KEYS = tuple(f.name for f in dataclasses.fields(Prices))


def _prices_from(values: Mapping[str, object], where: str) -> dict[str, Decimal]:
    """Check keys and turn numbers into Decimals via their text, so 0.4 stays exactly 0.4."""
    prices: dict[str, Decimal] = {}
    for key, value in values.items():
        if key not in PRICE_KEYS:
            raise ValueError(f"{where}: unknown price key {key!r} (known: {', '.join(PRICE_KEYS)})")
        if value is None:
            continue  # a config key left out keeps the built-in price
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{where}.{key}: expected a number, got {value!r}")
        prices[key] = Decimal(str(value))
    return prices


# ---- token counts -----------------------------------------------------------------------------


def _as_dict(usage: UsageLike) -> Mapping[str, Any]:
    if isinstance(usage, pydantic.BaseModel):
        return usage.model_dump()
    return usage


def _count(data: Mapping[str, Any], *path: str) -> int:
    """A token count at ``path``; anything missing, null or not an integer counts as 0."""
    value: Any = data
    for key in path:
        if not isinstance(value, Mapping):
            return 0
        value = value.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


@dataclass(frozen=True, slots=True)
class TokenCounts:
    """Tokens of one or more responses by modality. Input counts include their cached part."""

    text_in: int = 0
    audio_in: int = 0
    image_in: int = 0
    cached_text: int = 0
    cached_audio: int = 0
    cached_image: int = 0
    text_out: int = 0
    audio_out: int = 0

    @classmethod
    def from_usage(cls, usage: UsageLike) -> TokenCounts:
        """Read ``response.done.response.usage`` (a dict or ``RealtimeResponseUsage``).

        Without ``cached_tokens_details`` nothing counts as cached: the uncached rate overstates
        the cost, which is the safer error for a meter.
        """
        data = _as_dict(usage)
        cached = ("input_token_details", "cached_tokens_details")
        return cls(
            text_in=_count(data, "input_token_details", "text_tokens"),
            audio_in=_count(data, "input_token_details", "audio_tokens"),
            image_in=_count(data, "input_token_details", "image_tokens"),
            cached_text=_count(data, *cached, "text_tokens"),
            cached_audio=_count(data, *cached, "audio_tokens"),
            cached_image=_count(data, *cached, "image_tokens"),
            text_out=_count(data, "output_token_details", "text_tokens"),
            audio_out=_count(data, "output_token_details", "audio_tokens"),
        )

    def __add__(self, other: TokenCounts) -> TokenCounts:
        return TokenCounts(*(a + b for a, b in zip(_values(self), _values(other), strict=True)))

    @property
    def input(self) -> int:
        return self.text_in + self.audio_in + self.image_in

    @property
    def cached(self) -> int:
        return self.cached_text + self.cached_audio + self.cached_image

    @property
    def output(self) -> int:
        return self.text_out + self.audio_out

    @property
    def total(self) -> int:
        return self.input + self.output


@dataclass(frozen=True, slots=True)
class TranscriptionCounts:
    """Input-transcription usage: tokens for token-billed models, seconds for whisper-style ones."""

    audio_in: int = 0
    text_in: int = 0
    text_out: int = 0
    seconds: Decimal = Decimal(0)

    @classmethod
    def from_usage(cls, usage: UsageLike) -> TranscriptionCounts:
        """Read ``...input_audio_transcription.completed.usage`` (``tokens`` or ``duration``)."""
        data = _as_dict(usage)
        if data.get("type") == "duration":
            seconds = data.get("seconds")
            valid = isinstance(seconds, int | float) and not isinstance(seconds, bool)
            return cls(seconds=Decimal(str(seconds)) if valid else Decimal(0))
        details = data.get("input_token_details")
        if not isinstance(details, Mapping):
            # No split given: the input of a transcription is the audio.
            return cls(
                audio_in=_count(data, "input_tokens"), text_out=_count(data, "output_tokens")
            )
        return cls(
            audio_in=_count(details, "audio_tokens"),
            text_in=_count(details, "text_tokens"),
            text_out=_count(data, "output_tokens"),
        )

    def __add__(self, other: TranscriptionCounts) -> TranscriptionCounts:
        return TranscriptionCounts(
            self.audio_in + other.audio_in,
            self.text_in + other.text_in,
            self.text_out + other.text_out,
            self.seconds + other.seconds,
        )


def _values(counts: TokenCounts) -> tuple[int, ...]:
    return dataclasses.astuple(counts)


# ---- costs ------------------------------------------------------------------------------------


def _priced(terms: Iterable[tuple[Decimal | int, Decimal | None]]) -> Decimal | None:
    """Sum of amount × price; None as soon as a non-zero amount has no known price."""
    total = Decimal(0)
    for amount, price in terms:
        if amount == 0:
            continue
        if price is None:
            return None
        total += amount * price
    return total


def cost(usage: UsageLike | TokenCounts, prices: Prices) -> Decimal | None:
    """USD for one response's usage (or accumulated counts): the formula of protocol doc §7.

    None when some usage present has no known price.
    """
    t = usage if isinstance(usage, TokenCounts) else TokenCounts.from_usage(usage)
    per_million = _priced(
        [
            (t.text_in - t.cached_text, prices.text_in),
            (t.cached_text, prices.text_cached_in),
            (t.audio_in - t.cached_audio, prices.audio_in),
            (t.cached_audio, prices.audio_cached_in),
            (t.image_in - t.cached_image, prices.image_in),
            (t.cached_image, prices.image_cached_in),
            (t.text_out, prices.text_out),
            (t.audio_out, prices.audio_out),
        ]
    )
    return None if per_million is None else per_million / PER_MILLION


def transcription_cost(usage: UsageLike | TranscriptionCounts, prices: Prices) -> Decimal | None:
    """USD for input-transcription usage, or None when the transcription model's rate is unknown."""
    u = usage if isinstance(usage, TranscriptionCounts) else TranscriptionCounts.from_usage(usage)
    tokens = _priced(
        [(u.audio_in, prices.audio_in), (u.text_in, prices.text_in), (u.text_out, prices.text_out)]
    )
    minutes = _priced([(u.seconds / SECONDS_PER_MINUTE, prices.audio_per_minute)])
    if tokens is None or minutes is None:
        return None
    return tokens / PER_MILLION + minutes


# ---- the table --------------------------------------------------------------------------------


@cache
def _builtin_prices() -> Mapping[str, Prices]:
    text = resources.files("voicecli").joinpath("data", "prices.toml").read_text(encoding="utf-8")
    models = tomllib.loads(text).get("models", {})
    return {
        model: Prices(**_prices_from(values, f"prices.toml: models.{model}"))
        for model, values in models.items()
    }


def _override_values(override: PriceOverride) -> Mapping[str, object]:
    if isinstance(override, pydantic.BaseModel):
        return override.model_dump()
    return override


class PriceTable:
    """Model name → Prices: the built-in table with the config's overrides applied."""

    def __init__(self, prices: Mapping[str, Prices]) -> None:
        self._prices = dict(prices)

    @classmethod
    def load(cls, overrides: Mapping[str, PriceOverride] | None = None) -> PriceTable:
        """Built-in prices, each key replaced by the config's value where one is set.

        A model only in the config gets the keys it sets; the others stay unknown.
        """
        prices = dict(_builtin_prices())
        for model, override in (overrides or {}).items():
            values = _prices_from(_override_values(override), f"pricing.{model}")
            prices[model] = dataclasses.replace(prices.get(model, Prices()), **values)
        return cls(prices)

    @property
    def models(self) -> list[str]:
        return sorted(self._prices)

    def price_for(self, model: str) -> Prices | None:
        """Exact match only (see the module docstring for why dated names are not guessed)."""
        return self._prices.get(model)


# ---- session totals ---------------------------------------------------------------------------


@dataclass
class UsageTotals:
    """Usage of a whole session, summed as ``response.done`` and transcription events arrive.

    Responses of every status count, cancelled ones included: their generated tokens are billed.
    A response without usage is counted in ``responses_without_usage`` so the meter can say its
    figure is a lower bound.
    """

    prices: Prices | None
    transcription_prices: Prices | None = None
    tokens: TokenCounts = field(default_factory=TokenCounts)
    transcription: TranscriptionCounts = field(default_factory=TranscriptionCounts)
    responses: int = 0
    responses_without_usage: int = 0
    transcriptions: int = 0

    @classmethod
    def for_session(
        cls, table: PriceTable, model: str, transcription_model: str | None = None
    ) -> UsageTotals:
        transcription = table.price_for(transcription_model) if transcription_model else None
        return cls(prices=table.price_for(model), transcription_prices=transcription)

    def add_response(self, usage: UsageLike | None) -> None:
        """Add one ``response.done``'s ``response.usage``; None is allowed (and counted)."""
        self.responses += 1
        if usage is None:
            self.responses_without_usage += 1
            return
        self.tokens += TokenCounts.from_usage(usage)

    def add_transcription(self, usage: UsageLike | None) -> None:
        """Add one ``input_audio_transcription.completed``'s ``usage`` (it may be absent)."""
        if usage is None:
            return
        self.transcriptions += 1
        self.transcription += TranscriptionCounts.from_usage(usage)

    @property
    def cost(self) -> Decimal | None:
        """USD of the responses so far; None when the model's prices are unknown."""
        return None if self.prices is None else cost(self.tokens, self.prices)

    @property
    def transcription_cost(self) -> Decimal | None:
        """USD of input transcription so far; zero before any, None when its rate is unknown."""
        if self.transcriptions == 0:
            return Decimal(0)
        if self.transcription_prices is None:
            return None
        return transcription_cost(self.transcription, self.transcription_prices)

    @property
    def total_cost(self) -> Decimal | None:
        """Responses plus transcription; None unless every part with usage has a known price."""
        responses, transcription = self.cost, self.transcription_cost
        if responses is None or transcription is None:
            return None
        return responses + transcription
