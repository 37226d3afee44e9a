"""voicecli.realtime.pricing: the dollar figure the cost meter shows, for real usage samples.

Samples are from /work/shared/docs/realtime-protocol.md §4.5; prices and the formula from §7.
Every expected cost is worked out by hand in the comment above it.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from openai.types.realtime import RealtimeResponseUsage, ResponseDoneEvent

from tests.unit.samples import RESPONSE_DONE, USAGE_320
from voicecli.config import Settings
from voicecli.realtime.pricing import (
    Prices,
    PriceTable,
    TokenCounts,
    UsageTotals,
    cost,
    transcription_cost,
)

JsonObject = dict[str, Any]

# §4.5 response.done spec example: total 253.
USAGE_253: JsonObject = RESPONSE_DONE["response"]["usage"]


# §4.5 input transcription usage, both shapes.
TRANSCRIPTION_TOKENS: JsonObject = {
    "type": "tokens",
    "total_tokens": 22,
    "input_tokens": 13,
    "input_token_details": {"text_tokens": 0, "audio_tokens": 13},
    "output_tokens": 9,
}
TRANSCRIPTION_SECONDS: JsonObject = {"type": "duration", "seconds": 2.1}

# gpt-realtime, USAGE_253: (119-64)*4 + 64*0.40 + 13*32 + 30*16 + 91*64
#   = 220 + 25.6 + 416 + 480 + 5824 = 6965.6 per 1M
COST_253 = Decimal("0.0069656")
# gpt-realtime, USAGE_320: 59*4 + (73-64)*32 + 64*0.40 + 41*16 + 147*64
#   = 236 + 288 + 25.6 + 656 + 9408 = 10613.6 per 1M
COST_320 = Decimal("0.0106136")

TABLE = PriceTable.load()


def prices(model: str, table: PriceTable = TABLE) -> Prices:
    found = table.price_for(model)
    assert found is not None, model
    return found


def test_spec_sample_on_gpt_realtime() -> None:
    assert cost(USAGE_253, prices("gpt-realtime")) == COST_253


def test_real_ga_sample_on_gpt_realtime() -> None:
    assert cost(USAGE_320, prices("gpt-realtime")) == COST_320


def test_spec_sample_on_gpt_realtime_mini() -> None:
    # 55*0.60 + 64*0.06 + 13*10 + 30*2.40 + 91*20 = 33 + 3.84 + 130 + 72 + 1820 = 2058.84
    assert cost(USAGE_253, prices("gpt-realtime-mini")) == Decimal("0.00205884")


def test_dated_snapshots_cost_the_same_as_their_alias() -> None:
    assert cost(USAGE_320, prices("gpt-realtime-2025-08-28")) == COST_320
    mini = cost(USAGE_320, prices("gpt-realtime-mini"))
    assert cost(USAGE_320, prices("gpt-realtime-mini-2025-10-06")) == mini
    assert cost(USAGE_320, prices("gpt-realtime-mini-2025-12-15")) == mini


def test_sdk_usage_objects_cost_the_same_as_json() -> None:
    assert cost(RealtimeResponseUsage.model_validate(USAGE_253), prices("gpt-realtime")) == (
        COST_253
    )
    done = {
        "type": "response.done",
        "event_id": "event_1",
        "response": {"object": "realtime.response", "status": "cancelled", "usage": USAGE_253},
    }
    event = ResponseDoneEvent.model_validate(done)
    assert event.response.usage is not None
    assert cost(event.response.usage, prices("gpt-realtime")) == COST_253


@pytest.mark.parametrize(
    ("modality", "uncached", "cached"),
    [("text", "4", "0.40"), ("audio", "32", "0.40"), ("image", "5", "0.50")],
)
def test_cached_tokens_are_billed_at_the_cached_rate(
    modality: str, uncached: str, cached: str
) -> None:
    million = {f"{modality}_tokens": 1_000_000}
    fresh = {"input_token_details": million}
    reread = {"input_token_details": {**million, "cached_tokens_details": million}}
    assert cost(fresh, prices("gpt-realtime")) == Decimal(uncached)
    assert cost(reread, prices("gpt-realtime")) == Decimal(cached)


def test_output_is_billed_at_the_output_rates() -> None:
    usage = {"output_token_details": {"text_tokens": 1_000_000, "audio_tokens": 1_000_000}}
    assert cost(usage, prices("gpt-realtime")) == Decimal(16 + 64)
    assert cost(usage, prices("gpt-realtime-2")) == Decimal(24 + 64)  # text out $24 (§7)


def test_usage_of_a_kind_without_a_known_price_makes_the_cost_unknown() -> None:
    # The legacy model has no image price: an image would not be free, just unpriced.
    legacy = prices("gpt-4o-realtime-preview")
    assert cost({"input_token_details": {"image_tokens": 10}}, legacy) is None
    # 119*5 + 13*40 + 30*20 + 91*80 (nothing cached in this variant) = 595+520+600+7280 = 8995
    no_cache = {**USAGE_253, "input_token_details": {"text_tokens": 119, "audio_tokens": 13}}
    assert cost(no_cache, legacy) == Decimal("0.008995")


def test_empty_or_partial_usage_counts_missing_numbers_as_zero() -> None:
    assert cost({}, prices("gpt-realtime")) == 0
    assert cost({"output_token_details": None, "input_tokens": 5}, prices("gpt-realtime")) == 0


# ---- the table --------------------------------------------------------------------------------


def test_unconfirmed_newer_models_are_absent_rather_than_guessed() -> None:
    assert TABLE.price_for("gpt-realtime-2.1") is None  # the default model: tokens without $
    assert TABLE.price_for("gpt-realtime-2.1-mini") is None


def test_lookup_is_exact_so_an_unknown_snapshot_is_not_guessed() -> None:
    assert TABLE.price_for("gpt-realtime-2026-01-01") is None
    assert TABLE.price_for("GPT-REALTIME") is None


def test_config_override_replaces_one_key_and_keeps_the_rest() -> None:
    settings = Settings.model_validate({"pricing": {"gpt-realtime": {"audio_out": 32.0}}})
    table = PriceTable.load(settings.pricing)
    # COST_253 with audio out at 32 instead of 64: 6965.6 - 91*32 = 4053.6 per 1M
    assert cost(USAGE_253, prices("gpt-realtime", table)) == Decimal("0.0040536")
    assert table.price_for("gpt-realtime-mini") == TABLE.price_for("gpt-realtime-mini")
    assert TABLE.price_for("gpt-realtime") == prices("gpt-realtime")  # built-ins untouched


def test_config_can_price_a_model_the_table_lacks() -> None:
    rates = {"text_in": 1.0, "text_cached_in": 0.1, "text_out": 2.0}
    rates |= {"audio_in": 10.0, "audio_cached_in": 0.5, "audio_out": 20.0}
    table = PriceTable.load({"gpt-realtime-2.1": rates})
    # 55*1 + 64*0.1 + 13*10 + 30*2 + 91*20 = 55 + 6.4 + 130 + 60 + 1820 = 2071.4
    assert cost(USAGE_253, prices("gpt-realtime-2.1", table)) == Decimal("0.0020714")
    # Only some keys given: the kinds left out stay unknown, not zero.
    partial = PriceTable.load({"gpt-realtime-2.1": {"text_in": 1.0}})
    assert cost(USAGE_253, prices("gpt-realtime-2.1", partial)) is None


def test_unknown_override_key_is_refused() -> None:
    with pytest.raises(ValueError, match="audio_outt"):
        PriceTable.load({"gpt-realtime": {"audio_outt": 1.0}})


# ---- transcription ----------------------------------------------------------------------------


def test_duration_transcription_is_priced_per_minute() -> None:
    # 2.1 s at $0.017/min: 2.1/60*0.017 = 0.000595
    assert transcription_cost(TRANSCRIPTION_SECONDS, prices("gpt-realtime-whisper")) == Decimal(
        "0.000595"
    )


def test_token_transcription_without_a_price_is_unknown() -> None:
    assert TABLE.price_for("gpt-4o-mini-transcribe") is None
    # A rate only per minute does not price token usage either.
    assert transcription_cost(TRANSCRIPTION_TOKENS, prices("gpt-realtime-whisper")) is None


def test_token_transcription_with_configured_prices() -> None:
    table = PriceTable.load({"gpt-4o-mini-transcribe": {"audio_in": 3.0, "text_out": 5.0}})
    # 13*3 + 9*5 = 39 + 45 = 84 per 1M
    mini_transcribe = prices("gpt-4o-mini-transcribe", table)
    assert transcription_cost(TRANSCRIPTION_TOKENS, mini_transcribe) == Decimal("0.000084")


# ---- session totals ---------------------------------------------------------------------------


def test_totals_add_every_response_including_cancelled_and_missing_usage() -> None:
    totals = UsageTotals.for_session(TABLE, "gpt-realtime", "gpt-realtime-whisper")
    totals.add_response(USAGE_253)  # completed
    totals.add_response(USAGE_320)  # cancelled by barge-in, still billed
    totals.add_response(None)  # a response that reported no usage
    assert (totals.responses, totals.responses_without_usage) == (3, 1)
    assert totals.tokens == TokenCounts(
        text_in=119 + 59,
        audio_in=13 + 73,
        cached_text=64,
        cached_audio=64,
        text_out=30 + 41,
        audio_out=91 + 147,
    )
    assert totals.tokens.total == 253 + 320
    assert totals.cost == COST_253 + COST_320
    assert totals.transcription_cost == 0  # nothing transcribed yet
    totals.add_transcription(TRANSCRIPTION_SECONDS)
    totals.add_transcription(None)
    assert totals.transcriptions == 1
    assert totals.total_cost == COST_253 + COST_320 + Decimal("0.000595")


def test_unknown_model_counts_tokens_but_has_no_cost() -> None:
    totals = UsageTotals.for_session(TABLE, "gpt-realtime-2.1")
    totals.add_response(USAGE_253)
    assert totals.tokens.input == 132
    assert totals.tokens.output == 121
    assert totals.tokens.cached == 64
    assert totals.cost is None
    assert totals.total_cost is None


def test_unpriced_transcription_leaves_the_response_cost_visible() -> None:
    totals = UsageTotals.for_session(TABLE, "gpt-realtime", "gpt-4o-mini-transcribe")
    totals.add_response(USAGE_253)
    totals.add_transcription(TRANSCRIPTION_TOKENS)
    assert totals.transcription.audio_in == 13
    assert totals.transcription.text_out == 9
    assert totals.cost == COST_253
    assert totals.transcription_cost is None
    assert totals.total_cost is None
