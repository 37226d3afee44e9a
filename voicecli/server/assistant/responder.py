"""The ``assistant`` responder: hears with PocketSphinx, thinks with the brain, speaks with eSpeak.

Every call gets its own responder (its brain remembers a pending tool call; its recogniser state
adapts to the caller's voice); all calls share one warm recogniser process and one synthesiser.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from voicecli.audio.dsp import resample
from voicecli.server.assistant.brain import Action, Brain, CallTool, Say
from voicecli.server.assistant.recognizer import SAMPLE_RATE, Heard
from voicecli.server.assistant.synth import Synth
from voicecli.server.assistant.worker import RecognizerError, RecognizerProcess
from voicecli.server.responders import (
    RATE_HZ,
    FunctionCall,
    Pcm,
    Reply,
    ResponseRequest,
    Speech,
    Trigger,
)

log = logging.getLogger(__name__)


class Engines:
    """What every call shares: the recogniser process and the synthesiser, kept warm."""

    def __init__(
        self, recognizer: RecognizerProcess | None = None, synth: Synth | None = None
    ) -> None:
        self.recognizer = recognizer or RecognizerProcess()
        self.synth = synth or Synth()

    def warm(self) -> None:
        """Start loading the recogniser now, so that the first turn does not wait for it."""
        self.recognizer.start()

    def hear(self, audio: Pcm, cmn: str | None) -> Heard:
        """Blocking: 48 kHz audio → transcript (run in a thread)."""
        return self.recognizer.transcribe(resample(audio, RATE_HZ, SAMPLE_RATE).tobytes(), cmn)


_shared: Engines | None = None


def shared_engines() -> Engines:
    global _shared
    if _shared is None:
        _shared = Engines()
    return _shared


def assistant_factory(engines: Engines | None = None) -> Callable[[], AssistantResponder]:
    """One responder per call, all sharing ``engines`` (default: the process's), warmed now."""
    shared = engines or shared_engines()
    shared.warm()
    return lambda: AssistantResponder(shared)


class AssistantResponder:
    """Speech in → transcript; transcript or text → the brain's answer, spoken."""

    name = "assistant"

    def __init__(self, engines: Engines, clock: Callable[[], datetime] | None = None) -> None:
        self._engines = engines
        self._brain = Brain(clock) if clock is not None else Brain()
        self._cmn: str | None = None  # the recogniser's adaptation to this caller's voice
        self._failure: str | None = None

    async def transcribe(self, audio: Pcm) -> str | None:
        try:
            heard = await asyncio.to_thread(self._engines.hear, audio, self._cmn)
        except RecognizerError as exc:
            log.warning("speech recognition failed: %s", exc)
            self._failure = str(exc)
            return None
        self._cmn, self._failure = heard.cmn, None
        log.debug("heard %r (%s)", heard.text, heard.passes)
        return heard.text

    async def respond(self, request: ResponseRequest) -> Reply:
        action = await self._think(request)
        if isinstance(action, CallTool):
            return Reply((FunctionCall(action.name, action.arguments),))
        audio = await asyncio.to_thread(self._engines.synth.speak, action.text)
        return Reply((Speech(action.text, audio),))

    async def _think(self, request: ResponseRequest) -> Action:
        if request.trigger is Trigger.TOOL_OUTPUT and request.tool_outputs:
            return self._brain.tool_results([(o.name, o.output) for o in request.tool_outputs])
        text = request.user_text
        if text is None and request.user_audio is not None:
            text = await self.transcribe(request.user_audio)
        if text is None and self._failure is not None:
            return Say(f"My speech recogniser failed: {self._failure}.")
        if text is None:
            return self._brain.ready()
        return self._brain.hear(text, request.tool_names)
