"""A `voicecli talk` Link without audio devices: for integration tests and bench/reconnect.py.

The real Link, Session, transports and MicRouter, against a real endpoint (normally an
in-process `voicecli serve`). The microphone is 20 ms blocks of silence at real-time pace (as
a quiet room would give), the speaker a counter of received frames; every event the Link
emits is kept with its monotonic time, so tests wait for what a user would see.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import numpy as np

from voicecli.app import AnyTransport, Dial, session_config
from voicecli.audio.formats import FRAME_SAMPLES, Pcm
from voicecli.config import Settings
from voicecli.errors import VoiceCliError
from voicecli.realtime.pricing import PriceTable, UsageTotals
from voicecli.realtime.tools import registry_from_settings
from voicecli.talk.events import CallInfo, Notice, TalkEvent
from voicecli.talk.link import Link, LinkParts
from voicecli.talk.mic import MicRouter

E = TypeVar("E")
FRAME_S = FRAME_SAMPLES / 48_000


@dataclass
class Heard:
    """Everything the Link reported, with time.monotonic() of each."""

    events: list[tuple[float, TalkEvent]] = field(default_factory=list)
    frames: int = 0  # remote audio frames that reached "the speaker"
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, event: TalkEvent) -> None:
        self.events.append((time.monotonic(), event))
        self.changed.set()

    def of(self, kind: type[E]) -> list[E]:
        return [e for _, e in self.events if isinstance(e, kind)]

    def notices(self, level: str | None = None) -> list[str]:
        return [n.text for n in self.of(Notice) if level is None or n.level == level]

    async def wait_for(self, condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
        async with asyncio.timeout(timeout_s):
            while not condition():
                self.changed.clear()
                await self.changed.wait()


class LinkRig:
    def __init__(self, settings: Settings, key: str, *, quiet: Callable[[], bool] | None = None):
        self.settings = settings
        self.heard = Heard()
        self.mic = MicRouter()
        self.failure: VoiceCliError | None = None
        tools = registry_from_settings(settings)
        config = session_config(settings, tools, manual_turns=False, text_only=False)
        usage = UsageTotals.for_session(
            PriceTable.load(settings.pricing), settings.session.model, None
        )
        parts = LinkParts(
            dial=replace(Dial.of(settings, key, config), notify=self._warn),
            tools=tools,
            usage=usage,
            emit=self.heard.add,
            call_info=self._call_info,
            on_audio=self._audio,
            quiet=quiet or (lambda: True),
        )
        self.link = Link(parts, self.mic)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[LinkRig]:
        """Connected and running until the block ends; then hung up."""
        try:
            await self.link.open()
            async with asyncio.TaskGroup() as tasks:
                feeder = tasks.create_task(self._feed())
                runner = tasks.create_task(self._run())
                try:
                    yield self
                finally:
                    feeder.cancel()
                    runner.cancel()
        finally:
            await self.link.close()

    def say(self, text: str) -> None:
        session = self.link.session
        assert session is not None
        session.say(text)

    def send(self, event: dict[str, Any]) -> None:
        session = self.link.session
        assert session is not None
        session.send(event)

    async def _run(self) -> None:
        try:
            await self.link.run()
        except VoiceCliError as exc:
            self.failure = exc
            self.heard.changed.set()

    async def _feed(self) -> None:
        """Silence in 20 ms blocks, paced by the loop clock."""
        loop = asyncio.get_running_loop()
        start, sent = loop.time(), 0
        block = np.zeros(FRAME_SAMPLES, dtype=np.int16)
        while True:
            self.mic.push(block, time.monotonic())
            sent += 1
            await asyncio.sleep(max(0.0, start + sent * FRAME_S - loop.time()))

    def _audio(self, pcm: Pcm, pts: int | None) -> None:
        self.heard.frames += 1

    def _warn(self, text: str) -> None:
        self.heard.add(Notice("warn", text))

    def _call_info(self, transport: AnyTransport) -> CallInfo:
        return CallInfo(
            endpoint=self.settings.api.base_url,
            model=self.settings.session.model,
            voice=self.settings.session.voice,
            call_id=transport.call_id or getattr(transport, "session_id", None),
            transport=transport.kind,
            embedded=False,
        )
