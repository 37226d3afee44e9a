"""The conversation's connection, kept alive: reconnect after a drop, roll over before the cap.

A Link owns "the current connection" (a transport and the Session on it) for `voicecli talk`:
- a retryable drop (data channel closed, peer connection closed or failed, no audio for
  ``network.liveness_timeout_s``) opens a new connection at once, then retries with backoff
  within ``network.retry_budget_s`` (realtime/failures.py); the session configuration and tools
  go with the new call, and the conversation so far is replayed as text items (History). The
  user sees Reconnecting, then CallInfo and Reconnected with the gap: drop detected → audio
  flowing again (WebRTC: the first remote audio frame; WebSocket: connected and replayed);
- ``session_expired`` (the service's 60-minute cap) is not an error for the user: the next
  session starts the same way, with a notice instead of a "link lost" mark;
- after ``network.rollover_after_s`` the link moves to a new session at a quiet moment (no
  response, no user speech, playout drained): the new connection is made first, the history
  replayed, then the old one hung up, so nothing is lost in between;
- a fatal failure (realtime/failures.py) ends the call with the service's message.

Audio devices stay open throughout: the MicRouter drops mic blocks during a gap, and only the
current connection's audio reaches the speaker (a dying or standby connection is muted here).
The Link is the controller's Conversation: its commands go to the current session.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from voicecli.app import AnyTransport, Dial, Media, connect
from voicecli.audio.formats import RATE_HZ, Pcm
from voicecli.audio.playout import SharedPlayout
from voicecli.errors import ServiceError, VoiceCliError
from voicecli.realtime.events import client_event
from voicecli.realtime.failures import FATAL_HINTS, Retry, is_fatal_code
from voicecli.realtime.history import History
from voicecli.realtime.pricing import UsageTotals
from voicecli.realtime.session import Session
from voicecli.realtime.session_events import (
    ServiceErrorEvent,
    SessionEvent,
    SpeechMark,
    ToolCallFinished,
)
from voicecli.realtime.tools import ToolRegistry
from voicecli.realtime.transport import RemoteAudio
from voicecli.rtc.tracks import MicTrack
from voicecli.talk.events import CallInfo, Notice, Reconnected, Reconnecting, TalkEvent
from voicecli.talk.mic import MicRouter
from voicecli.transports.websocket import WebSocketTransport

log = logging.getLogger(__name__)

FIRST_AUDIO_WAIT_S = 2.0  # after a reconnect: how long "audio flowing again" may take to show
QUIET_FOR_S = 0.5  # a rollover waits for this much continuous quiet
QUIET_POLL_S = 0.1
SESSION_CAP_S = 3600.0  # the service's maximum session duration
CAP_MARGIN_S = 15.0  # roll over by this long before the cap, quiet or not
ROLLOVER_RETRY_S = 30.0  # a rollover whose new connection failed tries again after this


@dataclass(frozen=True)
class LinkParts:
    """What a Link is built from; the callbacks run on the event loop."""

    dial: Dial
    tools: ToolRegistry
    usage: UsageTotals  # one total across every session of the conversation
    emit: Callable[[TalkEvent], None]  # to the UI (and the controller)
    call_info: Callable[[AnyTransport], CallInfo]
    on_audio: RemoteAudio  # the current connection's remote audio
    on_rtp_sent: Callable[[], None] | None = None
    playout: SharedPlayout | None = None  # cut on barge-in over a WebSocket
    quiet: Callable[[], bool] = lambda: True  # the talk side: playout drained, no PTT turn open
    clock: Callable[[], float] = time.monotonic


@dataclass
class _Conn:
    """One connection: its transport, its Session, and facts the link keeps about it."""

    transport: AnyTransport
    track: MicTrack
    generation: int
    opened_at: float
    session: Session | None = None
    first_audio: asyncio.Event = field(default_factory=asyncio.Event)
    expired: bool = False  # the service said session_expired: the drop that follows is the cap
    user_speaking: bool = False


class PlayoutCut:
    """Barge-in over a WebSocket: flush the playout and truncate the item at what was heard."""

    def __init__(self, playout: SharedPlayout, transport: WebSocketTransport) -> None:
        self._playout = playout
        self._transport = transport

    def cut(self) -> None:
        before = self._playout.stats.flushed_ms
        self._playout.flush()
        unheard_ms = self._playout.stats.flushed_ms - before
        self._transport.truncate_unheard(round(unheard_ms * RATE_HZ / 1000))


class Link:
    def __init__(self, parts: LinkParts, mic: MicRouter) -> None:
        self._parts = parts
        self._mic = mic
        self.history = History()
        self._mode = parts.dial.settings.network.transport
        self._generation = 0
        self._current: _Conn | None = None
        self._others: list[_Conn] = []  # lost, standby or replaced connections not closed yet
        self._tasks: asyncio.TaskGroup | None = None
        self._fatal: VoiceCliError | None = None
        self._lost = asyncio.Event()  # the current connection went away (or a fatal error)
        self.reconnects: list[float] = []  # each gap, drop detected → audio flowing again
        self.rollovers = 0

    # The first connection.

    async def open(self) -> None:
        """Connect (with retries); the link is ready to run."""
        conn = await self._connect(self._retry_notice)
        self._current = conn
        self._mic.use(conn.track)
        self._parts.emit(self._parts.call_info(conn.transport))

    @property
    def transport(self) -> AnyTransport | None:
        return None if self._current is None else self._current.transport

    @property
    def session(self) -> Session | None:
        return None if self._current is None else self._current.session

    # Running.

    async def run(self) -> None:
        """Until cancelled (the call ends) or a fatal failure, which is raised."""
        assert self._current is not None, "open() first"
        try:
            async with asyncio.TaskGroup() as tasks:
                self._tasks = tasks
                self._start(self._current)
                rollovers = tasks.create_task(self._rollovers())
                failure = await self._keep_up()
                rollovers.cancel()
                await self.close()
        finally:
            self._tasks = None
        raise failure

    async def close(self) -> None:
        """Hang up every connection; safe to call more than once."""
        conns = [c for c in (self._current, *self._others) if c is not None]
        self._others.clear()
        self._mic.use(None)
        await asyncio.gather(*(c.transport.close() for c in conns))

    async def _keep_up(self) -> VoiceCliError:
        """Reconnect after each drop; returns the fatal failure that ends the call."""
        while True:
            await self._lost.wait()
            self._lost.clear()
            if self._fatal is not None:
                return self._fatal
            conn = self._current
            if conn is None or conn.session is None or conn.session.ended is None:
                continue
            try:
                await self._reconnect(conn)
            except VoiceCliError as exc:
                return exc

    async def _reconnect(self, lost: _Conn) -> None:
        detected = self._parts.clock()
        assert lost.session is not None and lost.session.ended is not None
        cause = lost.session.ended.cause
        self._retire(lost)
        if lost.expired:
            on_retry = self._retry_notice
        else:
            self._parts.emit(Reconnecting(cause, 1))
            on_retry = self._retry_reconnecting
        conn = await self._connect(on_retry)
        self._install(conn)
        await self._first_audio(conn)
        gap = self._parts.clock() - detected
        self._parts.emit(self._parts.call_info(conn.transport))
        if lost.expired:
            self.rollovers += 1
            self._parts.emit(Notice("info", "the session reached its time limit; continued"))
        else:
            self.reconnects.append(gap)
            self._parts.emit(Reconnected(gap, conn.transport.kind))

    async def _first_audio(self, conn: _Conn) -> None:
        if conn.transport.kind != "webrtc":
            return  # no audio until a reply: connected and replayed is "flowing"
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(FIRST_AUDIO_WAIT_S):
                await conn.first_audio.wait()

    # Rollover.

    async def _rollovers(self) -> None:
        settings = self._parts.dial.settings.network
        while True:
            conn = self._current
            assert conn is not None
            due = conn.opened_at + settings.rollover_after_s
            await asyncio.sleep(max(0.0, due - self._parts.clock()))
            if conn is self._current and not await self._roll_over(conn):
                await asyncio.sleep(ROLLOVER_RETRY_S)

    async def _roll_over(self, old: _Conn) -> bool:
        """Make the new connection, wait for quiet, switch; False when connecting failed."""
        force_at = old.opened_at + max(
            self._parts.dial.settings.network.rollover_after_s, SESSION_CAP_S - CAP_MARGIN_S
        )
        await self._quiet(old, force_at)
        if old is not self._current:  # lost meanwhile: the reconnect took over
            return True
        try:
            standby = await self._connect(lambda _: None)
        except VoiceCliError as exc:
            self._parts.emit(Notice("warn", f"could not start a new session yet: {exc.message}"))
            return False
        self._others.append(standby)  # closed with the link if it ends while we wait
        await self._quiet(old, force_at)
        self._others.remove(standby)
        if old is not self._current:
            await standby.transport.close()
            return True
        self._retire(old)
        self._install(standby)
        self.rollovers += 1
        self._parts.emit(self._parts.call_info(standby.transport))
        minutes = (self._parts.clock() - old.opened_at) / 60
        self._parts.emit(Notice("info", f"moved to a new session after {minutes:.0f} min"))
        return True

    async def _quiet(self, conn: _Conn, force_at: float) -> None:
        """Until nobody speaks and nothing plays for QUIET_FOR_S (or ``force_at`` passes)."""
        since: float | None = None
        while self._parts.clock() < force_at and conn is self._current:
            now = self._parts.clock()
            if not self._is_quiet(conn):
                since = None
            elif since is None:
                since = now
            elif now - since >= QUIET_FOR_S:
                return
            await asyncio.sleep(QUIET_POLL_S)

    def _is_quiet(self, conn: _Conn) -> bool:
        session = conn.session
        busy = session is None or session.busy() or conn.user_speaking
        return not busy and self._parts.quiet()

    # Connections.

    async def _connect(self, on_retry: Callable[[Retry], None]) -> _Conn:
        self._generation += 1
        generation = self._generation
        tracks: list[MicTrack] = []

        def new_track() -> MicTrack:
            tracks.append(self._mic.new_track())
            return tracks[-1]

        media = Media(
            mic=new_track,
            on_audio=lambda pcm, pts: self._audio(generation, pcm, pts),
            on_rtp_sent=self._rtp_sent(generation),
        )
        transport = await connect(self._parts.dial, media, on_retry, self._mode)
        if transport.kind == "websocket" and self._mode == "auto":
            self._mode = "websocket"  # UDP is blocked here: later connections go straight there
        conn = _Conn(transport, tracks[-1], generation, self._parts.clock())
        conn.session = Session(
            transport,
            self._parts.tools,
            self._parts.usage,
            lambda event: self._on_session_event(conn, event),
            self._playout_hook(transport),
        )
        return conn

    def _install(self, conn: _Conn) -> None:
        """Make ``conn`` current: mic, replayed history, running."""
        self._current = conn
        self._mic.use(conn.track)
        self._start(conn)
        assert conn.session is not None
        for event in self.history.replay():
            conn.session.send(event)
        if self.history.awaiting_response():
            conn.session.request_response()  # tool output the model had not answered yet

    def _start(self, conn: _Conn) -> None:
        assert self._tasks is not None and conn.session is not None
        self._tasks.create_task(conn.transport.run())
        self._tasks.create_task(conn.session.run())
        self._tasks.create_task(self._watch(conn, conn.session))

    async def _watch(self, conn: _Conn, session: Session) -> None:
        await session.gone.wait()
        if conn is self._current:
            self._lost.set()

    def _playout_hook(self, transport: AnyTransport) -> PlayoutCut | None:
        playout = self._parts.playout
        if isinstance(transport, WebSocketTransport) and playout is not None:
            return PlayoutCut(playout, transport)
        return None

    def _retire(self, conn: _Conn) -> None:
        """Stop listening to ``conn`` and hang it up in the background."""
        if self._current is conn:
            self._mic.use(None)  # the gap: mic blocks are dropped, not queued
        assert self._tasks is not None
        self._tasks.create_task(conn.transport.close())

    # Events and audio.

    def _on_session_event(self, conn: _Conn, event: SessionEvent) -> None:
        if conn is not self._current:
            self.history.on_event(event)
            if isinstance(event, ToolCallFinished):
                self._late_tool_result(event.result.call_id)
            return
        if isinstance(event, ServiceErrorEvent) and self._special_error(conn, event):
            return
        if isinstance(event, SpeechMark):
            conn.user_speaking = event.state == "started"
        self.history.on_event(event)
        self._parts.emit(event)

    def _late_tool_result(self, call_id: str) -> None:
        """A tool finished after its call was replaced: the new session gets the call, its
        output, and a response request (the model was waiting for it)."""
        session = self.session
        items = self.history.call_items(call_id)
        if session is None or not items:
            return
        for item in items:
            session.send(client_event("conversation.item.create", item=item))
        session.request_response()

    def _special_error(self, conn: _Conn, event: ServiceErrorEvent) -> bool:
        """session_expired is handled silently; a fatal code ends the call. True: swallowed."""
        if event.code == "session_expired":
            conn.expired = True
            return True
        if is_fatal_code(event.code) and event.code is not None:
            hint = FATAL_HINTS[event.code]
            self._fatal = ServiceError(event.message, code=event.code, hint=hint)
            self._lost.set()
        return False

    def _audio(self, generation: int, pcm: Pcm, pts: int | None) -> None:
        conn = self._current
        if conn is None or conn.generation != generation:
            return  # a standby or a dying connection: not for the speaker
        conn.first_audio.set()
        self._parts.on_audio(pcm, pts)

    def _rtp_sent(self, generation: int) -> Callable[[], None] | None:
        probe = self._parts.on_rtp_sent
        if probe is None:
            return None

        def sent() -> None:
            conn = self._current
            if conn is not None and conn.generation == generation:
                probe()

        return sent

    # The controller's Conversation.

    @property
    def responding(self) -> bool:
        session = self.session
        return session is not None and session.responding

    def interrupt(self) -> None:
        if self.session is not None:
            self.session.interrupt()

    def clear_input(self) -> None:
        if self.session is not None:
            self.session.clear_input()

    def commit_audio(self) -> None:
        if self.session is not None:
            self.session.commit_audio()

    def playout_drained(self) -> None:
        if self.session is not None:
            self.session.playout_drained()

    def _retry_notice(self, retry: Retry) -> None:
        text = f"{retry.cause}; trying again in {retry.delay_s:.1f} s"
        self._parts.emit(Notice("warn", text))

    def _retry_reconnecting(self, retry: Retry) -> None:
        self._parts.emit(Reconnecting(retry.cause, retry.attempt + 1))
