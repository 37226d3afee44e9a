"""`voicecli talk`: microphone → WebRTC → model → playout buffer → speaker, with keys and a UI.

The composition of one live call. Threads: PortAudio's input and output callbacks only copy
(Capture hands 20 ms blocks to the loop; Playback pulls from the locked playout buffer);
everything else runs on the event loop under one TaskGroup. The session knows nothing of
audio devices or screens; the UI only reads events. The connection is the Link's (link.py):
it reconnects after a drop and rolls over before the session cap while the devices stay open.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from voicecli.app import EMBEDDED_KEY, AnyTransport, Dial, endpoint, session_config
from voicecli.audio.devices import PLAYOUT_FLOOR_MS, Capture, DeviceInfo, Playback, resolve_device
from voicecli.audio.dsp import rms_dbfs
from voicecli.audio.formats import Pcm
from voicecli.audio.playout import PlayoutConfig, SharedPlayout
from voicecli.auth.keys import KeyStore
from voicecli.config import Settings
from voicecli.errors import AudioDeviceLost, VoiceCliError
from voicecli.realtime.pricing import PriceTable, UsageTotals
from voicecli.realtime.session_events import ResponseStarted
from voicecli.realtime.tools import registry_from_settings
from voicecli.talk.controller import Mode, TalkController
from voicecli.talk.eventlog import EventLog
from voicecli.talk.events import (
    AudioMark,
    CallInfo,
    Ended,
    Levels,
    Notice,
    PlayoutFigures,
    Reconnecting,
    TalkEvent,
)
from voicecli.talk.keys import key_reader
from voicecli.talk.link import Link, LinkParts
from voicecli.talk.mic import MicRouter
from voicecli.talk.probes import PlayProbe, SendProbe, span
from voicecli.talk.transcript import TranscriptFile

TICK_S = 0.05  # gate, first-audio matching
LEVELS_EVERY = 2  # ticks: meters at 10 Hz
FIGURES_EVERY = 10  # ticks: playout figures at 2 Hz


@dataclass(frozen=True)
class TalkRequest:
    duration_s: float | None = None
    stats_json: Path | None = None
    transcript: Path | None = None
    event_log: Path | None = None


class TalkUi(Protocol):
    """The dashboard or the plain printer."""

    def update(self, event: TalkEvent, now: float) -> None: ...

    def close(self, now: float) -> dict[str, Any]:
        """Stop drawing, restore the screen; returns the session summary."""
        ...


UiFactory = Callable[[], TalkUi]


async def run_talk(
    settings: Settings,
    request: TalkRequest,
    store: KeyStore,
    ui: UiFactory,
    report: Callable[[dict[str, Any]], None] = lambda _: None,
) -> dict[str, Any]:
    """One live call until q, Ctrl-C, --duration or a fatal error; returns the summary.

    ``report`` gets the summary once the screen is restored, also when the call failed.
    """
    devices = await asyncio.to_thread(_devices, settings)  # PortAudio enumerates: ~80 ms
    async with endpoint(settings, store) as (live, key):
        return await TalkCall(live, key, request, devices).run(ui, report)


def _devices(settings: Settings) -> tuple[DeviceInfo, DeviceInfo]:
    return (
        resolve_device(settings.audio.input_device or None, "input"),
        resolve_device(settings.audio.output_device or None, "output"),
    )


class _Meter:
    """The loudest 20 ms block since the last read, in dBFS."""

    def __init__(self) -> None:
        self._peak = float("-inf")

    def add(self, pcm: Pcm) -> None:
        self._peak = max(self._peak, rms_dbfs(pcm))

    def read(self) -> float:
        peak, self._peak = self._peak, float("-inf")
        return peak


class TalkCall:
    def __init__(
        self,
        settings: Settings,
        key: str,
        request: TalkRequest,
        devices: tuple[DeviceInfo, DeviceInfo],
    ) -> None:
        self.settings = settings
        self._key = key
        self.request = request
        self._devices = devices
        self.mic = MicRouter()
        self.playout = SharedPlayout(PlayoutConfig(min_target_ms=PLAYOUT_FLOOR_MS))
        self.send_probe = SendProbe(lambda: self.mic.current_capture_s)
        self.play_probe = PlayProbe()
        self._levels = (_Meter(), _Meter())
        self._stop = asyncio.Event()
        self._failure: VoiceCliError | None = None
        self._ui: TalkUi | None = None
        self._controller: TalkController | None = None
        self._link: Link | None = None
        self._transcript = TranscriptFile(request.transcript) if request.transcript else None
        self._event_log = EventLog(request.event_log) if request.event_log else None

    async def run(
        self, make_ui: UiFactory, report: Callable[[dict[str, Any]], None]
    ) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        capture = Capture(self._devices[0], self._on_mic, self._on_device_lost, loop)
        playback = Playback(self._devices[1], self._pull, self._on_device_lost, loop)
        self._ui = make_ui()
        summary: dict[str, Any] = {}
        # Everything alive now (imports, schemas: ~130k objects) lives for the whole call. Frozen,
        # the collector never scans it again: a full collection over it holds the GIL ~60 ms,
        # longer than the 25 ms the speaker has queued, so it would be an audible gap.
        gc.freeze()
        try:
            await capture.astart()
            await playback.astart()
            await self._call()
        finally:
            await asyncio.gather(capture.aclose(), playback.aclose())
            summary = self._finish(_device_counts(capture, playback))
            report(summary)
        if self._failure is not None:
            raise self._failure
        return summary

    async def _call(self) -> None:
        link = self._link = Link(self._link_parts(), self.mic)
        try:
            await link.open()
            mode = Mode(self.settings.turns.vad, self.settings.audio.duplex)
            controller = TalkController(link, self.mic, self.playout, mode, self._on_local)
            self._controller = controller
            self._show(controller.controls())
            await self._converse(link, controller)
        finally:
            await link.close()

    def _link_parts(self) -> LinkParts:
        tools = registry_from_settings(self.settings)
        push_to_talk = self.settings.turns.vad == "off"
        config = session_config(self.settings, tools, manual_turns=push_to_talk, text_only=False)
        dial = replace(Dial.of(self.settings, self._key, config), notify=self._warn)
        return LinkParts(
            dial=dial,
            tools=tools,
            usage=self._usage(),
            emit=self._on_link_event,
            call_info=self._call_info,
            on_audio=self._on_remote,
            on_rtp_sent=self.send_probe.on_rtp_sent,
            playout=self.playout,
            quiet=self._quiet,
        )

    async def _converse(self, link: Link, controller: TalkController) -> None:
        loop = asyncio.get_running_loop()
        with key_reader(loop, controller.on_key), _signals(loop, lambda: self._end("user")):
            async with asyncio.TaskGroup() as tasks:
                running = tasks.create_task(self._run_link(link))
                ticker = tasks.create_task(self._ticker(controller))
                limit = tasks.create_task(self._limit())
                await self._stop.wait()
                for task in (ticker, limit, running):
                    task.cancel()

    async def _run_link(self, link: Link) -> None:
        try:
            await link.run()
        except VoiceCliError as exc:  # fatal, or the retry budget ran out
            self._fail(exc)

    async def _limit(self) -> None:
        if self.request.duration_s is not None:
            await asyncio.sleep(self.request.duration_s)
            self._end("duration")

    async def _ticker(self, controller: TalkController) -> None:
        tick = 0
        while True:
            await asyncio.sleep(TICK_S)
            tick += 1
            stats = self.playout.stats
            controller.tick(stats.depth_ms)
            if stats.depth_ms == 0 and self._link is not None:
                self._link.playout_drained()  # WebSocket: the reply's speech has ended
            played = self.play_probe.match()
            if played is not None:
                self._show(AudioMark("played", played))
            if tick % LEVELS_EVERY == 0:
                self._show(Levels(self._levels[0].read(), self._levels[1].read()))
            if tick % FIGURES_EVERY == 0:
                figures = PlayoutFigures(
                    stats.depth_ms, stats.target_ms, stats.underruns, stats.played_ms
                )
                self._show(figures)

    # Callbacks (loop thread unless said otherwise).

    def _on_mic(self, pcm: Pcm, captured_s: float) -> None:
        self.mic.push(pcm, captured_s)
        self._levels[0].add(pcm)

    def _on_remote(self, pcm: Pcm, pts: int | None) -> None:
        now = time.monotonic()
        if self._controller is not None and self._controller.discard_remote:
            return
        self.playout.push(pcm, pts, now)
        self._levels[1].add(pcm)
        first = self.play_probe.received(pcm, pts, now)
        if first is not None:
            self._show(AudioMark("received", first))

    def _pull(self, samples: int, dac_s: float) -> Pcm:
        """PortAudio's output thread: a locked copy out of the playout buffer, nothing else."""
        pcm, pts = self.playout.pull_with_pts(samples)
        self.play_probe.played(pts, dac_s)
        return pcm

    def _on_device_lost(self, cause: str) -> None:
        self._fail(AudioDeviceLost(cause))

    def _on_link_event(self, event: TalkEvent) -> None:
        """Session events of the current connection, and the link's own (CallInfo, gaps)."""
        if isinstance(event, ResponseStarted):
            self.play_probe.expect_response()
        if self._controller is not None:
            if isinstance(event, Reconnecting):
                self._controller.link_lost()
            self._controller.on_event(event)
        if self._transcript is not None:
            self._transcript.on_event(event)
        self._show(event)

    def _warn(self, text: str) -> None:
        self._show(Notice("warn", text))

    def _quiet(self) -> bool:
        """Nothing plays here and no push-to-talk turn is open (a rollover may happen now)."""
        talking = self._controller is not None and self._controller.talking
        return self.playout.stats.depth_ms == 0 and not talking

    def _on_local(self, event: TalkEvent) -> None:
        if isinstance(event, Ended):
            self._end(event.reason)
        else:
            self._show(event)

    # Ending.

    def _end(self, reason: str) -> None:
        if not self._stop.is_set():
            self._show(Ended(reason))
            self._stop.set()

    def _fail(self, failure: VoiceCliError) -> None:
        if self._failure is None and not self._stop.is_set():
            self._failure = failure
            self._end(failure.message)

    def _finish(self, devices: dict[str, int]) -> dict[str, Any]:
        if self._transcript is not None:
            self._transcript.close()
        if self._event_log is not None:
            self._event_log.close()
        summary = self._ui.close(time.monotonic()) if self._ui is not None else {}
        summary["audio_path"] = self._audio_path() | devices
        summary["link"] = self._link_summary()
        if self.request.stats_json is not None:
            self.request.stats_json.write_text(json.dumps(summary, indent=2) + "\n")
        return summary

    def _audio_path(self) -> dict[str, Any]:
        send, play = span(self.send_probe.samples_ms), span(self.play_probe.samples_ms)
        return {
            "capture_to_rtp_ms": {"p50": send.p50_ms, "p95": send.p95_ms, "n": send.count},
            "rtp_to_speaker_ms": {"p50": play.p50_ms, "p95": play.p95_ms, "n": play.count},
            "mic_blocks_dropped": self.mic.dropped,
            "playout_underruns": self.playout.stats.underruns,
        }

    def _link_summary(self) -> dict[str, Any]:
        link = self._link
        transport = None if link is None else link.transport
        return {
            "transport": None if transport is None else transport.kind,
            "reconnect_gaps_s": [] if link is None else [round(g, 3) for g in link.reconnects],
            "rollovers": 0 if link is None else link.rollovers,
            "mic_blocks_dropped_in_gaps": self.mic.gap_blocks,
        }

    # Helpers.

    def _show(self, event: TalkEvent) -> None:
        now = time.monotonic()
        if self._event_log is not None:
            self._event_log.write(event, now)
        if self._ui is not None:
            self._ui.update(event, now)

    def _usage(self) -> UsageTotals:
        return UsageTotals.for_session(
            PriceTable.load(self.settings.pricing),
            self.settings.session.model,
            self.settings.session.transcription_model or None,
        )

    def _call_info(self, transport: AnyTransport) -> CallInfo:
        call_id = transport.call_id or getattr(transport, "session_id", None)
        return CallInfo(
            endpoint=self.settings.api.base_url,
            model=self.settings.session.model,
            voice=self.settings.session.voice,
            call_id=call_id,
            transport=transport.kind,
            embedded=self._key == EMBEDDED_KEY,
        )


def _device_counts(capture: Capture, playback: Playback) -> dict[str, int]:
    """What the PortAudio callbacks could only count (they never log): shown in the summary."""
    return {
        "capture_overflows": capture.overflows,
        "playback_underflows": playback.underflows,
        "speaker_pull_errors": playback.pull_errors,
    }


@contextlib.contextmanager
def _signals(loop: asyncio.AbstractEventLoop, stop: Callable[[], None]) -> Iterator[None]:
    """Ctrl-C and SIGTERM end the call cleanly (hang up, release devices, exit 0)."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    try:
        yield
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
