"""What the talk loop tells its UIs besides SessionEvents: local audio, controls, the link.

The session knows the protocol; these are the facts only the client's own audio path and keys
know. Every UI input is an immutable value; the reducer is told the time separately.
"""

from __future__ import annotations

from dataclasses import dataclass

from voicecli.realtime.session_events import SessionEvent


@dataclass(frozen=True, slots=True)
class CallInfo:
    """Who we are talking to; sent once connected (and again after a reconnect)."""

    endpoint: str
    model: str
    voice: str
    call_id: str | None
    transport: str  # webrtc | websocket
    embedded: bool  # the in-process local server (no key configured)
    max_session_s: float = 3600.0  # the service's session cap


@dataclass(frozen=True, slots=True)
class Levels:
    """Mic and speaker levels over the last ~100 ms, dBFS (-inf for digital silence)."""

    mic_dbfs: float
    speaker_dbfs: float


@dataclass(frozen=True, slots=True)
class PlayoutFigures:
    """The playout (jitter) buffer's figures for the screen."""

    depth_ms: float
    target_ms: float
    underruns: int
    played_ms: float


@dataclass(frozen=True, slots=True)
class Controls:
    """What the keys do right now and what the mic path is doing."""

    muted: bool
    vad: str  # server | semantic | off (push-to-talk)
    duplex: str  # full | half
    talking: bool  # push-to-talk: space pressed once, the mic turn is open
    gate_closed: bool  # half duplex: mic gated while the assistant plays
    assistant_speaking: bool


@dataclass(frozen=True, slots=True)
class AudioMark:
    """The first assistant audio of a response: received from the network, or played.

    ``at_s`` is time.monotonic(); for "played" it is the PortAudio DAC time of the first
    audible sample, which is later than when the event reaches the UI.
    """

    kind: str  # received | played
    at_s: float


@dataclass(frozen=True, slots=True)
class Reconnecting:
    cause: str
    attempt: int


@dataclass(frozen=True, slots=True)
class Reconnected:
    gap_s: float  # drop detected → audio flowing again
    transport: str


@dataclass(frozen=True, slots=True)
class Notice:
    """A one-line message for the user (a warning, an error, what a key did)."""

    level: str  # info | warn | error
    text: str


@dataclass(frozen=True, slots=True)
class Ended:
    reason: str  # "user" (q / Ctrl-C / --duration) or the cause of a fatal disconnect


LocalEvent = (
    CallInfo
    | Levels
    | PlayoutFigures
    | Controls
    | AudioMark
    | Reconnecting
    | Reconnected
    | Notice
    | Ended
)

TalkEvent = SessionEvent | LocalEvent
