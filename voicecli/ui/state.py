"""The dashboard's model: every TalkEvent folded into one immutable DashboardState.

``reduce(state, event, now)`` is pure: no I/O and no clock reads (``now`` is time.monotonic(),
passed in by the caller). It runs on the event loop for every event; Rich's refresh thread only
reads the latest state, so nothing is shared that can change under it.

Hour-long sessions stay cheap by construction:
- level, playout, network and control events replace one small part of the state and leave
  the transcript object as it is;
- the transcript is a chunked persistent vector: appending or changing an entry copies one
  chunk of ``CHUNK`` entries plus the chunk index, never the whole conversation. Nothing is ever
  dropped from it.

Speech order: a user turn's placeholder is appended when the service hears speech start
(``speech_started``) or push-to-talk opens, before the assistant's reply is; the transcript fills
it in place whenever it arrives, even after the reply has started. A transcript for an item
never seen (a typed turn) is appended where it arrives.

Latency of a turn (each stage in ms, see ``STAGES``): end of user speech (``speech_stopped``, or
push-to-talk released) → ``response.created`` → first audio packet received → first sample at
the DAC. A response that made only tool calls (no audio) does not end the turn: the follow-up
response's audio does, so "response→first audio" then includes the tool's run time, which is what
the user waited through.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from enum import StrEnum
from typing import Any

from voicecli.realtime.pricing import Prices, PriceTable, TokenCounts, cost
from voicecli.realtime.session_events import (
    AssistantText,
    AudioState,
    ResponseFinished,
    ResponseStarted,
    ServiceErrorEvent,
    SpeechMark,
    ToolCallFinished,
    ToolCallStarted,
    UserText,
)
from voicecli.realtime.tools import ToolResult
from voicecli.realtime.transport import LinkState, NetworkStats
from voicecli.redact import redact
from voicecli.talk.events import (
    AudioMark,
    CallInfo,
    Controls,
    Ended,
    Levels,
    Notice,
    PlayoutFigures,
    Reconnected,
    Reconnecting,
    TalkEvent,
)

CHUNK = 64  # transcript entries per chunk: an update copies one chunk and the chunk index
# Half of a 32k-token realtime context: past this, every turn re-bills a long history.
DEFAULT_CONTEXT_WARN_TOKENS = 16_000
CAP_WARN_S = 300.0  # warn when the session cap is this close
UNHEARD_HOLD_S = 8.0  # keep the "service hears no speech" warning this long after the speech
QUIET_RESET_S = 1.5  # a pause this long ends a run of local speech energy
MAX_LEVEL_GAP_S = 0.25  # a level event counts for at most this much time (the stream stalled)

STAGES = ("speech_to_response", "response_to_audio", "audio_to_playout", "total")


# ---- configuration ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DashboardConfig:
    """Static inputs of the reducer: prices and warning thresholds."""

    prices: PriceTable | None = None
    model: str | None = None  # priced from the start; CallInfo.model replaces it when it comes
    context_warn_tokens: int = DEFAULT_CONTEXT_WARN_TOKENS  # per-turn input tokens
    silent_mic_s: float = 5.0  # no input energy this long while unmuted → warning
    silent_dbfs: float = -70.0  # "no input energy": below a quiet room through a live mic
    speech_dbfs: float = -35.0  # "local speech energy": a voice close to the mic
    unheard_s: float = 2.0  # this much local speech with no speech_started → warning


# ---- the transcript ---------------------------------------------------------------------------


class Heard(StrEnum):
    """A user turn's transcript state."""

    SPEAKING = "speaking"  # speech started (or push-to-talk open); no words yet
    PENDING = "pending"  # speech ended; the transcript has not arrived
    PARTIAL = "partial"  # transcription deltas so far
    FINAL = "final"


class Reply(StrEnum):
    """An assistant turn's state."""

    STREAMING = "streaming"
    DONE = "done"
    INTERRUPTED = "interrupted"  # cancelled, or its audio cleared by a barge-in
    FAILED = "failed"
    INCOMPLETE = "incomplete"


_REPLY_FOR_STATUS = {
    "completed": Reply.DONE,
    "cancelled": Reply.INTERRUPTED,
    "failed": Reply.FAILED,
    "incomplete": Reply.INCOMPLETE,
}


@dataclass(frozen=True, slots=True)
class UserTurn:
    item_id: str | None  # None: a push-to-talk turn whose item id is not known yet
    text: str = ""
    heard: Heard = Heard.SPEAKING


@dataclass(frozen=True, slots=True)
class AssistantTurn:
    response_id: str
    parts: tuple[tuple[str, str], ...] = ()  # (item id, text) in arrival order
    status: Reply = Reply.STREAMING
    reason: str | None = None
    final_items: frozenset[str] = frozenset()  # items whose whole transcript has arrived

    @property
    def text(self) -> str:
        return " ".join(text for _, text in self.parts if text)

    def with_text(self, item_id: str, text: str, final: bool) -> AssistantTurn:
        if item_id in self.final_items:
            return self  # a delta after the final transcript adds nothing
        parts = dict(self.parts)
        parts[item_id] = text if final else parts.get(item_id, "") + text
        finals = self.final_items | {item_id} if final else self.final_items
        return replace(self, parts=tuple(parts.items()), final_items=finals)


@dataclass(frozen=True, slots=True)
class ToolTurn:
    call_id: str
    name: str
    arguments: str
    result: ToolResult | None = None  # None while the tool runs


@dataclass(frozen=True, slots=True)
class ErrorLine:
    text: str


@dataclass(frozen=True, slots=True)
class LinkMark:
    """A connection event in the transcript (drop, reconnect), so the gap shows where it was."""

    text: str


Entry = UserTurn | AssistantTurn | ToolTurn | ErrorLine | LinkMark


def _empty_keys() -> dict[str, int]:
    return {}


@dataclass(frozen=True, slots=True)
class Transcript:
    """Every entry in speech order, as a persistent vector of chunks.

    ``keys`` indexes only entries that can still change (a turn being transcribed, a reply
    streaming or playing, a tool running), so it stays small however long the session is.
    ``waiting`` lists push-to-talk placeholders whose item id is not known yet, oldest first.
    """

    chunks: tuple[tuple[Entry, ...], ...] = ()
    size: int = 0
    keys: Mapping[str, int] = field(default_factory=_empty_keys)
    waiting: tuple[int, ...] = ()

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> Entry:
        if not 0 <= index < self.size:
            raise IndexError(index)
        return self.chunks[index // CHUNK][index % CHUNK]

    def __iter__(self) -> Iterator[Entry]:
        for chunk in self.chunks:
            yield from chunk

    def newest_first(self) -> Iterator[Entry]:
        for chunk in reversed(self.chunks):
            yield from reversed(chunk)

    def find(self, key: str) -> int | None:
        return self.keys.get(key)

    def append(self, entry: Entry, key: str | None = None) -> Transcript:
        if self.chunks and len(self.chunks[-1]) < CHUNK:
            chunks = (*self.chunks[:-1], (*self.chunks[-1], entry))
        else:
            chunks = (*self.chunks, (entry,))
        keys = self.keys if key is None else {**self.keys, key: self.size}
        return replace(self, chunks=chunks, size=self.size + 1, keys=keys)

    def put(self, index: int, entry: Entry) -> Transcript:
        """Replace one entry; copies one chunk."""
        c, offset = divmod(index, CHUNK)
        chunk = self.chunks[c]
        new_chunk = (*chunk[:offset], entry, *chunk[offset + 1 :])
        return replace(self, chunks=(*self.chunks[:c], new_chunk, *self.chunks[c + 1 :]))

    def close(self, key: str) -> Transcript:
        """The entry under ``key`` will not change any more."""
        if key not in self.keys:
            return self
        return replace(self, keys={k: i for k, i in self.keys.items() if k != key})

    def bind(self, key: str, index: int) -> Transcript:
        return replace(self, keys={**self.keys, key: index})


def _user_key(item_id: str) -> str:
    return f"user:{item_id}"


def _reply_key(response_id: str) -> str:
    return f"reply:{response_id}"


def _tool_key(call_id: str) -> str:
    return f"tool:{call_id}"


# ---- the other parts --------------------------------------------------------------------------


class LinkStatus(StrEnum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    ENDED = "ended"


@dataclass(frozen=True, slots=True)
class Link:
    status: LinkStatus = LinkStatus.CONNECTING
    stages: tuple[LinkState, ...] = ()  # this attempt's milestones, in order
    attempt_began: float | None = None  # monotonic time of this attempt's start
    call: CallInfo | None = None
    connected_at: float | None = None  # when this call's session began (its cap counts from it)
    reconnecting: Reconnecting | None = None
    reconnects: int = 0
    last_cause: str | None = None
    last_gap_s: float | None = None
    ended: str | None = None


@dataclass(frozen=True, slots=True)
class Net:
    stats: NetworkStats | None = None
    recent_loss: float | None = None  # fraction lost between the last two samples


@dataclass(frozen=True, slots=True)
class MicWatch:
    """What the silent-mic warnings need; see ``warnings``."""

    silent_since: float | None = None  # start of the current silent, unmuted stretch
    loud_s: float = 0.0  # local speech energy in the current run with no speech_started
    last_loud_at: float | None = None
    last_level_at: float | None = None
    unheard_at: float | None = None  # when loud_s passed the threshold


@dataclass(frozen=True, slots=True)
class TurnLatency:
    """Marks of one turn, in monotonic seconds."""

    response_id: str
    speech_end: float | None
    created: float
    received: float | None = None
    played: float | None = None

    def stages_ms(self) -> dict[str, float | None]:
        return {
            "speech_to_response": _span_ms(self.speech_end, self.created),
            "response_to_audio": _span_ms(self.created, self.received),
            "audio_to_playout": _span_ms(self.received, self.played),
            "total": _span_ms(self.speech_end, self.played),
        }


def _span_ms(start: float | None, end: float | None) -> float | None:
    if start is None or end is None:
        return None
    # Audio can race response.created (RTP vs the data channel): count that as no wait.
    return max(0.0, (end - start) * 1000)


@dataclass(frozen=True, slots=True)
class Spread:
    p50: float | None = None
    p95: float | None = None
    n: int = 0


def _empty_samples() -> dict[str, tuple[float, ...]]:
    return dict.fromkeys(STAGES, ())


def _empty_spreads() -> dict[str, Spread]:
    return {stage: Spread() for stage in STAGES}


@dataclass(frozen=True, slots=True)
class LatencyBook:
    speech_end: float | None = None  # the latest end of user speech not answered yet
    current: TurnLatency | None = None
    done: tuple[TurnLatency, ...] = ()
    # Each stage's values over the done turns, sorted: percentiles without re-sorting history.
    samples: Mapping[str, tuple[float, ...]] = field(default_factory=_empty_samples)
    spreads: Mapping[str, Spread] = field(default_factory=_empty_spreads)  # done + current

    def all(self) -> tuple[TurnLatency, ...]:
        return self.done if self.current is None else (*self.done, self.current)


@dataclass(frozen=True, slots=True)
class UsageBook:
    prices: Prices | None = None
    tokens: TokenCounts = field(default_factory=TokenCounts)
    responses: int = 0
    without_usage: int = 0  # responses that came with no usage: totals are a lower bound
    last: TokenCounts | None = None  # the latest response's tokens
    last_cost: Decimal | None = None
    total_cost: Decimal | None = None

    def priced(self, prices: Prices | None) -> UsageBook:
        total = None if prices is None else cost(self.tokens, prices)
        last = None if prices is None or self.last is None else cost(self.last, prices)
        return replace(self, prices=prices, total_cost=total, last_cost=last)


@dataclass(frozen=True, slots=True)
class Responses:
    active: frozenset[str] = frozenset()  # created, not finished
    playing: frozenset[str] = frozenset()  # output audio started, not stopped or cleared


DEFAULT_CONTROLS = Controls(
    muted=False,
    vad="server",
    duplex="full",
    talking=False,
    gate_closed=False,
    assistant_speaking=False,
)


@dataclass(frozen=True, slots=True)
class DashboardState:
    config: DashboardConfig
    started_at: float
    transcript: Transcript = field(default_factory=Transcript)
    link: Link = field(default_factory=Link)
    net: Net = field(default_factory=Net)
    levels: Levels | None = None
    playout: PlayoutFigures | None = None
    controls: Controls = DEFAULT_CONTROLS
    mic: MicWatch = field(default_factory=MicWatch)
    latency: LatencyBook = field(default_factory=LatencyBook)
    usage: UsageBook = field(default_factory=UsageBook)
    responses: Responses = field(default_factory=Responses)
    notice: Notice | None = None
    notice_at: float = 0.0
    errors: int = 0


def initial_state(started_at: float, config: DashboardConfig | None = None) -> DashboardState:
    """The state before any event; ``started_at`` is time.monotonic() when talk began."""
    config = config or DashboardConfig()
    return DashboardState(
        config=config, started_at=started_at, usage=UsageBook().priced(_prices(config, None))
    )


def _prices(config: DashboardConfig, model: str | None) -> Prices | None:
    name = model or config.model
    if config.prices is None or name is None:
        return None
    return config.prices.price_for(name)


# ---- the reducer ------------------------------------------------------------------------------


def reduce(state: DashboardState, event: TalkEvent, now: float) -> DashboardState:
    """The state after ``event``, which happened at ``now`` (time.monotonic())."""
    handler = _HANDLERS.get(type(event))
    return state if handler is None else handler(state, event, now)


# Conversation.


def _speech(state: DashboardState, event: SpeechMark, now: float) -> DashboardState:
    if event.state == "started":
        mic = replace(state.mic, loud_s=0.0, unheard_at=None)  # the service hears the user
        return replace(state, transcript=_open_user(state.transcript, event.item_id), mic=mic)
    latency = replace(state.latency, speech_end=now)
    t = state.transcript
    index = t.find(_user_key(event.item_id))
    if index is not None:
        t = _speech_ended(t, index)
    return replace(state, transcript=t, latency=latency)


def _open_user(t: Transcript, item_id: str) -> Transcript:
    key = _user_key(item_id)
    return t if t.find(key) is not None else t.append(UserTurn(item_id), key)


def _speech_ended(t: Transcript, index: int) -> Transcript:
    entry = t[index]
    if isinstance(entry, UserTurn) and entry.heard is Heard.SPEAKING:
        return t.put(index, replace(entry, heard=Heard.PENDING))
    return t


def _user_text(state: DashboardState, event: UserText, now: float) -> DashboardState:
    t = state.transcript
    key = _user_key(event.item_id)
    index = t.find(key)
    if index is None and t.waiting:  # a push-to-talk turn: its placeholder is the oldest one
        index, t = t.waiting[0], replace(t, waiting=t.waiting[1:])
        t = t.bind(key, index)
    if index is None:
        if not event.final:
            # Deltas of an item never announced (or already final) wait for the whole text:
            # a stray delta after the final must not open a second turn.
            return state
        return replace(state, transcript=t.append(UserTurn(event.item_id, event.text, Heard.FINAL)))
    turn = t[index]
    if not isinstance(turn, UserTurn) or turn.heard is Heard.FINAL:
        return state
    if event.final:
        t = t.put(index, replace(turn, item_id=event.item_id, text=event.text, heard=Heard.FINAL))
        return replace(state, transcript=t.close(key))
    filled = replace(turn, item_id=event.item_id, text=turn.text + event.text, heard=Heard.PARTIAL)
    return replace(state, transcript=t.put(index, filled))


def _response_started(state: DashboardState, event: ResponseStarted, now: float) -> DashboardState:
    t, _ = _reply(state.transcript, event.response_id)
    responses = replace(state.responses, active=state.responses.active | {event.response_id})
    latency = _latency_response(state.latency, event.response_id, now)
    return replace(state, transcript=t, responses=responses, latency=latency)


def _reply(t: Transcript, response_id: str) -> tuple[Transcript, int]:
    """The assistant turn of ``response_id``, appended if it is new."""
    key = _reply_key(response_id)
    index = t.find(key)
    if index is None:
        return t.append(AssistantTurn(response_id), key), t.size
    return t, index


def _assistant_text(state: DashboardState, event: AssistantText, now: float) -> DashboardState:
    t, index = _reply(state.transcript, event.response_id)
    turn = t[index]
    if not isinstance(turn, AssistantTurn):
        return state
    t = t.put(index, turn.with_text(event.item_id, event.text, event.final))
    return replace(state, transcript=t)


def _response_finished(
    state: DashboardState, event: ResponseFinished, now: float
) -> DashboardState:
    responses = replace(state.responses, active=state.responses.active - {event.response_id})
    t = state.transcript
    index = t.find(_reply_key(event.response_id))
    if index is not None:
        turn = t[index]
        if isinstance(turn, AssistantTurn):
            t = t.put(index, _finished(turn, event))
        t = _settle(t, event.response_id, responses)
    usage = _add_usage(state.usage, event.usage)
    return replace(state, transcript=t, responses=responses, usage=usage)


def _finished(turn: AssistantTurn, event: ResponseFinished) -> AssistantTurn:
    # A barge-in may have marked it interrupted already (audio cleared): keep that.
    status = turn.status
    if status is Reply.STREAMING:
        status = _REPLY_FOR_STATUS.get(event.status, Reply.DONE)
    return replace(turn, status=status, reason=turn.reason or event.reason)


def _settle(t: Transcript, response_id: str, responses: Responses) -> Transcript:
    """Stop tracking a reply once it is finished and its audio has ended."""
    if response_id in responses.active or response_id in responses.playing:
        return t
    return t.close(_reply_key(response_id))


def _audio_state(state: DashboardState, event: AudioState, now: float) -> DashboardState:
    rid = event.response_id
    playing = state.responses.playing
    playing = playing | {rid} if event.state == "started" else playing - {rid}
    responses = replace(state.responses, playing=playing)
    t = state.transcript
    index = t.find(_reply_key(rid))
    if event.state == "cleared" and index is not None:
        # A barge-in: generation may have completed, but the user did not hear the rest.
        turn = t[index]
        if isinstance(turn, AssistantTurn) and turn.status in (Reply.STREAMING, Reply.DONE):
            t = t.put(index, replace(turn, status=Reply.INTERRUPTED))
    if event.state != "started":
        t = _settle(t, rid, responses)
    return replace(state, transcript=t, responses=responses)


def _tool_started(state: DashboardState, event: ToolCallStarted, now: float) -> DashboardState:
    entry = ToolTurn(event.call_id, event.name, redact(event.arguments))
    t = state.transcript.append(entry, _tool_key(event.call_id))
    return replace(state, transcript=t)


def _tool_finished(state: DashboardState, event: ToolCallFinished, now: float) -> DashboardState:
    result = event.result
    error = None if result.error is None else redact(result.error)
    result = replace(result, output=redact(result.output), error=error)
    key = _tool_key(result.call_id)
    t = state.transcript
    index = t.find(key)
    if index is None:  # never saw it start: show it whole
        t = t.append(ToolTurn(result.call_id, result.name, "", result))
    else:
        turn = t[index]
        if isinstance(turn, ToolTurn):
            t = t.put(index, replace(turn, result=result)).close(key)
    return replace(state, transcript=t)


def _service_error(state: DashboardState, event: ServiceErrorEvent, now: float) -> DashboardState:
    text = f"{event.code}: {event.message}" if event.code else event.message
    return _error_line(state, text)


def _error_line(state: DashboardState, text: str) -> DashboardState:
    t = state.transcript.append(ErrorLine(redact(text)))
    return replace(state, transcript=t, errors=state.errors + 1)


def _notice(state: DashboardState, event: Notice, now: float) -> DashboardState:
    if event.level == "error":
        return _error_line(state, event.text)
    return replace(state, notice=replace(event, text=redact(event.text)), notice_at=now)


# Connection.


def _link_state(state: DashboardState, event: LinkState, now: float) -> DashboardState:
    link = state.link
    if not link.stages or any(s.name == event.name for s in link.stages):
        # A new attempt (a repeated stage means one began without a Reconnecting).
        link = replace(link, stages=(), attempt_began=now - event.at_s)
    return replace(state, link=replace(link, stages=(*link.stages, event)))


def _call_info(state: DashboardState, event: CallInfo, now: float) -> DashboardState:
    link = replace(
        state.link,
        status=LinkStatus.CONNECTED,
        call=event,
        connected_at=now,
        reconnecting=None,
    )
    usage = state.usage.priced(_prices(state.config, event.model))
    return replace(state, link=link, usage=usage)


def _reconnecting(state: DashboardState, event: Reconnecting, now: float) -> DashboardState:
    link = replace(
        state.link,
        status=LinkStatus.RECONNECTING,
        stages=(),
        reconnecting=event,
        last_cause=event.cause,
    )
    mark = LinkMark(f"link lost ({event.cause}); reconnecting, attempt {event.attempt}")
    t = _cut_off(state.transcript).append(mark)
    return replace(state, link=link, transcript=t, responses=Responses())


def _cut_off(t: Transcript) -> Transcript:
    """The call is gone: replies in flight were interrupted, speech in progress has ended."""
    for key, index in list(t.keys.items()):
        entry = t[index]
        if isinstance(entry, AssistantTurn):
            if entry.status is Reply.STREAMING:
                t = t.put(index, replace(entry, status=Reply.INTERRUPTED))
            t = t.close(key)
        elif isinstance(entry, UserTurn):
            t = _speech_ended(t, index)
    for index in t.waiting:
        t = _speech_ended(t, index)
    return t


def _reconnected(state: DashboardState, event: Reconnected, now: float) -> DashboardState:
    link = replace(
        state.link,
        status=LinkStatus.CONNECTED,
        reconnecting=None,
        reconnects=state.link.reconnects + 1,
        last_gap_s=event.gap_s,
    )
    mark = LinkMark(f"reconnected over {event.transport} after {event.gap_s:.1f} s")
    return replace(state, link=link, transcript=state.transcript.append(mark))


def _ended(state: DashboardState, event: Ended, now: float) -> DashboardState:
    link = replace(state.link, status=LinkStatus.ENDED, ended=event.reason, reconnecting=None)
    t = _cut_off(state.transcript)
    return replace(state, link=link, transcript=t, responses=Responses())


def _network(state: DashboardState, event: NetworkStats, now: float) -> DashboardState:
    return replace(state, net=Net(event, _recent_loss(state.net.stats, event)))


def _recent_loss(before: NetworkStats | None, after: NetworkStats) -> float | None:
    if before is None:
        return None
    received = after.packets_received - before.packets_received
    lost = max(0, after.packets_lost - before.packets_lost)  # RTCP can count duplicates as -1
    expected = received + lost
    return None if expected <= 0 else lost / expected


# Local audio and keys.


def _levels(state: DashboardState, event: Levels, now: float) -> DashboardState:
    mic = _watch_mic(state.mic, event.mic_dbfs, state.controls, state.config, now)
    return replace(state, levels=event, mic=mic)


def _watch_mic(
    w: MicWatch, dbfs: float, controls: Controls, config: DashboardConfig, now: float
) -> MicWatch:
    silent = not controls.muted and not dbfs >= config.silent_dbfs  # -inf and NaN are silent
    silent_since = (now if w.silent_since is None else w.silent_since) if silent else None
    gap = 0.0 if w.last_level_at is None else min(now - w.last_level_at, MAX_LEVEL_GAP_S)
    listening = controls.vad != "off" and not controls.muted and not controls.gate_closed
    loud = listening and not controls.assistant_speaking and dbfs >= config.speech_dbfs
    loud_s, last_loud_at, unheard_at = w.loud_s, w.last_loud_at, w.unheard_at
    if loud:
        loud_s, last_loud_at = loud_s + gap, now
        if unheard_at is None and loud_s >= config.unheard_s:
            unheard_at = now
    elif last_loud_at is None or now - last_loud_at > QUIET_RESET_S:
        loud_s = 0.0
    if unheard_at is not None and (last_loud_at is None or now - last_loud_at > UNHEARD_HOLD_S):
        unheard_at = None
    return MicWatch(silent_since, loud_s, last_loud_at, now, unheard_at)


def _playout(state: DashboardState, event: PlayoutFigures, now: float) -> DashboardState:
    return replace(state, playout=event)


def _controls(state: DashboardState, event: Controls, now: float) -> DashboardState:
    before = state.controls
    mic = state.mic
    if event.muted != before.muted or event.vad != before.vad:
        mic = MicWatch(last_level_at=mic.last_level_at)  # a new listening situation
    state = replace(state, controls=event, mic=mic)
    if event.vad != "off":
        return state
    if event.talking and not before.talking:
        return _ptt_opened(state)
    if before.talking and not event.talking:
        return _ptt_sent(state, now)
    return state


def _ptt_opened(state: DashboardState) -> DashboardState:
    t = state.transcript
    t = replace(t.append(UserTurn(None)), waiting=(*t.waiting, t.size))
    return replace(state, transcript=t)


def _ptt_sent(state: DashboardState, now: float) -> DashboardState:
    t = state.transcript
    if t.waiting:
        t = _speech_ended(t, t.waiting[-1])
    return replace(state, transcript=t, latency=replace(state.latency, speech_end=now))


# Latency.


def _latency_response(book: LatencyBook, response_id: str, now: float) -> LatencyBook:
    current = book.current
    if book.speech_end is None and current is not None and current.received is None:
        return book  # a follow-up (after tool calls): the turn is still waiting for audio
    samples = book.samples if current is None else _with_turn(book.samples, current)
    done = book.done if current is None else (*book.done, current)
    current = TurnLatency(response_id, book.speech_end, now)
    return LatencyBook(None, current, done, samples, _spreads(samples, current))


def _audio_mark(state: DashboardState, event: AudioMark, now: float) -> DashboardState:
    book = state.latency
    current = book.current
    if current is None:
        return state
    if event.kind == "received" and current.received is None:
        current = replace(current, received=event.at_s)
    elif event.kind == "played" and current.played is None:
        current = replace(current, played=event.at_s)
    else:
        return state
    book = replace(book, current=current, spreads=_spreads(book.samples, current))
    return replace(state, latency=book)


def _with_turn(
    samples: Mapping[str, tuple[float, ...]], turn: TurnLatency
) -> dict[str, tuple[float, ...]]:
    out = dict(samples)
    for stage, ms in turn.stages_ms().items():
        if ms is not None:
            values = out[stage]
            i = bisect.bisect_right(values, ms)
            out[stage] = (*values[:i], ms, *values[i:])
    return out


def _spreads(samples: Mapping[str, tuple[float, ...]], current: TurnLatency) -> dict[str, Spread]:
    """Percentiles over the done turns plus the current one, O(log n) per stage."""
    now = current.stages_ms()
    return {stage: _spread(samples[stage], now[stage]) for stage in STAGES}


def _spread(ordered: tuple[float, ...], extra: float | None) -> Spread:
    n = len(ordered) + (extra is not None)
    if n == 0:
        return Spread()
    return Spread(_nth(ordered, extra, _rank(50, n)), _nth(ordered, extra, _rank(95, n)), n)


def _rank(p: float, n: int) -> int:
    """0-based index of the nearest-rank ``p``th percentile of ``n`` values."""
    return max(1, math.ceil(p / 100 * n)) - 1


def _nth(ordered: tuple[float, ...], extra: float | None, k: int) -> float:
    """The ``k``th smallest of ``ordered`` with ``extra`` (if any) merged in."""
    if extra is None:
        return ordered[k]
    i = bisect.bisect_right(ordered, extra)
    if k < i:
        return ordered[k]
    return extra if k == i else ordered[k - 1]


def percentile(ordered: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile of sorted values (an observed value, never an interpolation)."""
    return ordered[_rank(p, len(ordered))] if ordered else None


# Usage.


def _add_usage(book: UsageBook, usage: Mapping[str, Any] | None) -> UsageBook:
    if usage is None:
        return replace(book, responses=book.responses + 1, without_usage=book.without_usage + 1)
    counts = TokenCounts.from_usage(usage)
    book = replace(book, responses=book.responses + 1, tokens=book.tokens + counts, last=counts)
    return book.priced(book.prices)


_Handler = Callable[[DashboardState, Any, float], DashboardState]

_HANDLERS: dict[type[Any], _Handler] = {
    UserText: _user_text,
    SpeechMark: _speech,
    ResponseStarted: _response_started,
    AssistantText: _assistant_text,
    ToolCallStarted: _tool_started,
    ToolCallFinished: _tool_finished,
    ResponseFinished: _response_finished,
    AudioState: _audio_state,
    ServiceErrorEvent: _service_error,
    LinkState: _link_state,
    NetworkStats: _network,
    CallInfo: _call_info,
    Levels: _levels,
    PlayoutFigures: _playout,
    Controls: _controls,
    AudioMark: _audio_mark,
    Reconnecting: _reconnecting,
    Reconnected: _reconnected,
    Notice: _notice,
    Ended: _ended,
}


# ---- derived views (pure; used by render, plain and summary) -----------------------------------


def keys(state: DashboardState) -> tuple[tuple[str, str | None], ...]:
    """What each key does right now; None when it does nothing at the moment."""
    c = state.controls
    space = ("send" if c.talking else "talk") if c.vad == "off" else None
    busy = c.assistant_speaking or bool(state.responses.active or state.responses.playing)
    return (
        ("space", space),
        ("m", "unmute" if c.muted else "mute"),
        ("Esc", "interrupt" if busy else None),
        ("q", "quit"),
    )


def link_stages(state: DashboardState) -> tuple[tuple[str, float], ...]:
    """This attempt's milestones and the seconds since it began, "connected" last once it is."""
    link = state.link
    stages = tuple((stage.name, stage.at_s) for stage in link.stages)
    began, connected = link.attempt_began, link.connected_at
    if stages and began is not None and connected is not None and connected >= began:
        stages += (("connected", connected - began),)
    return stages


def session_age(state: DashboardState, now: float) -> float | None:
    """Seconds since this call's session began (its cap counts from then)."""
    at = state.link.connected_at
    return None if at is None else max(0.0, now - at)


def time_left(state: DashboardState, now: float) -> float | None:
    age = session_age(state, now)
    call = state.link.call
    return None if age is None or call is None else max(0.0, call.max_session_s - age)


@dataclass(frozen=True, slots=True)
class Alert:
    kind: str  # silent_mic | unheard | context | cap: stable while the condition holds
    text: str


def warnings(state: DashboardState, now: float) -> tuple[Alert, ...]:
    """Warnings that hold at ``now``: silent mic (both rules), context growth, session cap."""
    out = [*_mic_warnings(state, now)]
    last = state.usage.last
    limit = state.config.context_warn_tokens
    if limit and last is not None and last.input > limit:  # 0: the warning is off
        text = (
            f"context growing: the last turn sent {last.input:,} input tokens "
            f"(> {limit:,}); every turn re-sends the conversation"
        )
        out.append(Alert("context", text))
    left = time_left(state, now)
    if left is not None and left < CAP_WARN_S and state.link.status is LinkStatus.CONNECTED:
        out.append(Alert("cap", f"session cap in {clock(left)}: the service ends the call then"))
    return tuple(out)


def _mic_warnings(state: DashboardState, now: float) -> Iterator[Alert]:
    w, config = state.mic, state.config
    if w.silent_since is not None and now - w.silent_since >= config.silent_mic_s:
        text = (
            f"no sound from the microphone for {now - w.silent_since:.0f} s "
            "(muted in the system, or the wrong input device?)"
        )
        yield Alert("silent_mic", text)
    recent = w.last_loud_at is not None and now - w.last_loud_at <= UNHEARD_HOLD_S
    if w.unheard_at is not None and recent:
        text = (
            "the mic hears speech but the service detected none (input device or turn.threshold?)"
        )
        yield Alert("unheard", text)


def clock(seconds: float) -> str:
    """m:ss, or h:mm:ss from an hour."""
    whole = int(max(0.0, seconds))
    h, rest = divmod(whole, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
