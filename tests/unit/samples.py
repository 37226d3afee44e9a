"""Real event samples quoted in realtime-protocol.md, shared by the tests that read them."""

from __future__ import annotations

from typing import Any

JsonObject = dict[str, Any]

# §4.5: response.done with usage (the spec example; total 253).
RESPONSE_DONE: JsonObject = {
    "type": "response.done",
    "event_id": "event_CCXHxcMy86rrKhBLDdqCh",
    "response": {
        "object": "realtime.response",
        "id": "resp_CCXHw0UJld10EzIUXQCNh",
        "status": "completed",
        "status_details": None,
        "output": [
            {
                "id": "item_CCXHwGjjDUfOXbiySlK7i",
                "type": "message",
                "status": "completed",
                "role": "assistant",
                "content": [
                    {
                        "type": "output_audio",
                        "transcript": "Loud and clear! I can hear you perfectly. "
                        "How can I help you today?",
                    }
                ],
            }
        ],
        "conversation_id": "conv_CCXHsurMKcaVxIZvaCI5m",
        "output_modalities": ["audio"],
        "max_output_tokens": "inf",
        "audio": {"output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "alloy"}},
        "usage": {
            "total_tokens": 253,
            "input_tokens": 132,
            "output_tokens": 121,
            "input_token_details": {
                "text_tokens": 119,
                "audio_tokens": 13,
                "image_tokens": 0,
                "cached_tokens": 64,
                "cached_tokens_details": {"text_tokens": 64, "audio_tokens": 0, "image_tokens": 0},
            },
            "output_token_details": {"text_tokens": 30, "audio_tokens": 91},
        },
        "metadata": None,
    },
}


# realtime-protocol.md §4.5, a real GA trace: 132 in (64 of them cached audio), 188 out.
USAGE_320: JsonObject = {
    "total_tokens": 320,
    "input_tokens": 132,
    "output_tokens": 188,
    "input_token_details": {
        "text_tokens": 59,
        "audio_tokens": 73,
        "image_tokens": 0,
        "cached_tokens": 64,
        "cached_tokens_details": {"text_tokens": 0, "audio_tokens": 64, "image_tokens": 0},
    },
    "output_token_details": {"text_tokens": 41, "audio_tokens": 147},
}
