"""The ``echo`` responder: plays the user's turn back, and tone "speech" for the offline replies.

Without a speech synthesiser, spoken text is stood in for by a tone whose length follows the
text (60 ms a character, at least 300 ms): long enough to hear and to pace like speech, and
the transcript carries the words.
"""

from __future__ import annotations

from voicecli.audio.dsp import tone
from voicecli.server.responders import (
    Pcm,
    Reply,
    ResponseRequest,
    Speech,
    ToolOutput,
    Trigger,
    duration_s,
)

MS_PER_CHAR = 60
MIN_TONE_MS = 300
DEFAULT_TONE_HZ = 440.0
READY_TEXT = "Echo is ready."


def tone_ms_for_text(text: str) -> int:
    return max(MIN_TONE_MS, MS_PER_CHAR * len(text))


def tone_speech(text: str, hz: float = DEFAULT_TONE_HZ, ms: int | None = None) -> Speech:
    """``text`` as Speech whose audio is a tone (``ms`` long, default by the text's length)."""
    return Speech(transcript=text, audio=tone(hz, tone_ms_for_text(text) if ms is None else ms))


class EchoResponder:
    """Says back what it got: the user's audio as is, text and tool outputs as tone speech."""

    name = "echo"

    async def transcribe(self, audio: Pcm) -> str | None:
        return f"[speech {duration_s(audio):.1f} s]"

    async def respond(self, request: ResponseRequest) -> Reply:
        return Reply((self._answer(request),))

    def _answer(self, request: ResponseRequest) -> Speech:
        if request.trigger is Trigger.SPEECH and request.user_audio is not None:
            audio = request.user_audio
            transcript = request.user_text or f"[echo {duration_s(audio):.1f} s]"
            return Speech(transcript=transcript, audio=audio.copy())
        if request.trigger is Trigger.TEXT and request.user_text:
            return tone_speech(request.user_text)
        if request.trigger is Trigger.TOOL_OUTPUT and request.tool_outputs:
            return tone_speech(_describe_outputs(request.tool_outputs))
        return tone_speech(READY_TEXT)


def _describe_outputs(outputs: tuple[ToolOutput, ...]) -> str:
    return " ".join(f"{o.name} returned: {o.output}" for o in outputs)
