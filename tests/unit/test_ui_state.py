"""voicecli.ui.state: what the dashboard knows after a sequence of talk events.

Each test feeds events as they arrive in a real session (times in seconds, monotonic) and checks
what a user would see: the turns in speech order, their text and status, the figures.
"""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from tests.unit.samples import USAGE_320
from voicecli.realtime.pricing import PriceTable
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
from voicecli.talk.events import (
    AudioMark,
    CallInfo,
    Controls,
    Levels,
    Notice,
    Reconnected,
    Reconnecting,
    TalkEvent,
)
from voicecli.ui.state import (
    CHUNK,
    AssistantTurn,
    DashboardConfig,
    DashboardState,
    ErrorLine,
    LinkMark,
    LinkStatus,
    ToolTurn,
    UserTurn,
    initial_state,
    keys,
    link_stages,
    percentile,
    reduce,
    time_left,
    warnings,
)

Timed = tuple[float, TalkEvent]

# gpt-realtime: 59*4 + (73-64)*32 + 64*0.40 + 41*16 + 147*64 = 10613.6 per 1M
COST_320 = Decimal("0.0106136")


def run(events: list[Timed], config: DashboardConfig | None = None) -> DashboardState:
    state = initial_state(0.0, config)
    for at, event in events:
        state = reduce(state, event, at)
    return state


def view(state: DashboardState) -> list[str]:
    """The transcript as 'kind status: text' strings, in order."""
    out = []
    for entry in state.transcript:
        if isinstance(entry, UserTurn):
            out.append(f"user {entry.heard}: {entry.text}")
        elif isinstance(entry, AssistantTurn):
            out.append(f"assistant {entry.status}: {entry.text}")
        elif isinstance(entry, ToolTurn):
            result = "running" if entry.result is None else entry.result.output
            out.append(f"tool {entry.name}: {result}")
        elif isinstance(entry, ErrorLine):
            out.append(f"error: {entry.text}")
        else:
            out.append(f"link: {entry.text}")
    return out


def spoken_turn(item: str, response: str, start: float, words: str, reply: str) -> list[Timed]:
    """A whole server-VAD turn with the user's transcript arriving before the reply ends."""
    return [
        (start, SpeechMark(item, "started", 0)),
        (start + 1.0, SpeechMark(item, "stopped", 1000)),
        (start + 1.4, ResponseStarted(response)),
        (start + 1.5, AudioState(response, "started")),
        (start + 1.5, AssistantText(response, f"i_{response}", reply[:5], final=False)),
        (start + 1.6, UserText(item, words, final=True)),
        (start + 1.7, AssistantText(response, f"i_{response}", reply, final=True)),
        (start + 1.8, ResponseFinished(response, "completed", None, USAGE_320)),
        (start + 3.0, AudioState(response, "stopped")),
    ]


def test_a_spoken_turn_shows_a_placeholder_then_the_words_and_the_reply() -> None:
    events = spoken_turn("u1", "r1", 1.0, "What time is it?", "It is nine.")
    assert view(run(events[:1])) == ["user speaking: "]
    assert view(run(events[:2])) == ["user pending: "]
    assert view(run(events[:5])) == ["user pending: ", "assistant streaming: It is"]
    assert view(run(events)) == ["user final: What time is it?", "assistant done: It is nine."]


def test_a_late_transcript_fills_its_placeholder_above_the_reply() -> None:
    events: list[Timed] = [
        (1.0, SpeechMark("u1", "started", 0)),
        (2.0, SpeechMark("u1", "stopped", 1000)),
        (2.3, ResponseStarted("r1")),
        (2.4, AssistantText("r1", "a1", "Sure, ", final=False)),
        (2.5, AssistantText("r1", "a1", "here it is.", final=False)),
        (2.6, ResponseFinished("r1", "completed", None, None)),
        # The next turn has started before the first transcript arrives.
        (3.0, SpeechMark("u2", "started", 2000)),
        (3.1, UserText("u1", "Tell me", final=False)),
        (3.2, UserText("u1", "Tell me a joke.", final=True)),
    ]
    assert view(run(events)) == [
        "user final: Tell me a joke.",
        "assistant done: Sure, here it is.",
        "user speaking: ",
    ]


def test_transcription_deltas_show_as_partial_text_until_the_final_replaces_them() -> None:
    events: list[Timed] = [
        (1.0, SpeechMark("u1", "started", 0)),
        (1.5, UserText("u1", "Hel", final=False)),
        (1.6, UserText("u1", "lo", final=False)),
    ]
    assert view(run(events)) == ["user partial: Hello"]
    events.append((1.7, UserText("u1", "Hello there.", final=True)))
    events.append((1.8, UserText("u1", " stray", final=False)))  # after final: ignored
    assert view(run(events)) == ["user final: Hello there."]


def test_a_typed_turn_without_speech_marks_appears_where_it_arrives() -> None:
    events: list[Timed] = [
        *spoken_turn("u1", "r1", 1.0, "Hi.", "Hello!"),
        (10.0, UserText("typed_1", "What's the weather?", final=True)),
        (10.2, ResponseStarted("r2")),
        (10.3, AssistantText("r2", "a2", "Sunny.", final=True)),
    ]
    assert view(run(events))[2:] == [
        "user final: What's the weather?",
        "assistant streaming: Sunny.",
    ]


def test_a_barge_in_marks_the_reply_interrupted_and_the_new_turn_follows_it() -> None:
    events: list[Timed] = [
        (1.0, SpeechMark("u1", "started", 0)),
        (2.0, SpeechMark("u1", "stopped", 1000)),
        (2.2, ResponseStarted("r1")),
        (2.3, AudioState("r1", "started")),
        (2.4, AssistantText("r1", "a1", "Once upon a time", final=False)),
        (3.0, SpeechMark("u2", "started", 2500)),
        (3.0, AudioState("r1", "cleared")),
        (3.1, ResponseFinished("r1", "cancelled", "turn_detected", None)),
    ]
    state = run(events)
    assert view(state) == [
        "user pending: ",
        "assistant interrupted: Once upon a time",
        "user speaking: ",
    ]
    reply = state.transcript[1]
    assert isinstance(reply, AssistantTurn) and reply.reason == "turn_detected"
    assert state.responses.active == frozenset() and state.responses.playing == frozenset()


def test_audio_cleared_after_a_completed_response_still_counts_as_interrupted() -> None:
    # Generation runs faster than real time: response.done comes while the audio still plays.
    events: list[Timed] = [
        (1.0, ResponseStarted("r1")),
        (1.1, AudioState("r1", "started")),
        (1.2, AssistantText("r1", "a1", "A long story.", final=True)),
        (1.3, ResponseFinished("r1", "completed", None, None)),
        (4.0, AudioState("r1", "cleared")),
    ]
    assert view(run(events)) == ["assistant interrupted: A long story."]
    assert view(run(events[:-1])) == ["assistant done: A long story."]


def test_a_tool_call_shows_its_name_arguments_result_and_duration() -> None:
    result = ToolResult("c1", "get_time", '{"time": "21:14"}', ok=True, duration_s=0.12)
    events: list[Timed] = [
        (1.0, ResponseStarted("r1")),
        (1.1, ToolCallStarted("c1", "get_time", '{"tz": "Asia/Tokyo"}')),
        (1.2, ResponseFinished("r1", "completed", None, None)),
    ]
    running = run(events)
    assert view(running) == ["assistant done: ", "tool get_time: running"]
    state = run([*events, (1.4, ToolCallFinished(result))])
    tool = state.transcript[1]
    assert isinstance(tool, ToolTurn)
    assert tool.arguments == '{"tz": "Asia/Tokyo"}'
    assert tool.result is not None and tool.result.duration_s == 0.12
    assert view(state) == ["assistant done: ", 'tool get_time: {"time": "21:14"}']
    assert not state.transcript.keys  # nothing left open


def test_tool_output_and_errors_are_redacted() -> None:
    secret = "sk-proj-abcdefghijklmnop1234"
    result = ToolResult("c1", "env", f"KEY={secret}", ok=True, duration_s=0.01)
    events: list[Timed] = [
        (1.0, ToolCallStarted("c1", "env", f'{{"key": "{secret}"}}')),
        (1.1, ToolCallFinished(result)),
        (1.2, ServiceErrorEvent("invalid_api_key", f"Incorrect API key {secret}", None)),
    ]
    shown = "\n".join(view(run(events)))
    assert secret not in shown and "sk-…1234" in shown


def test_service_errors_and_error_notices_appear_inline_in_order() -> None:
    events: list[Timed] = [
        *spoken_turn("u1", "r1", 1.0, "Hi.", "Hello!"),
        (5.0, ServiceErrorEvent("invalid_value", "Invalid value: 'x'", "evt_1")),
        (6.0, Notice("error", "speaker device lost")),
        (6.5, Notice("info", "muted")),
    ]
    state = run(events)
    assert view(state)[2:] == [
        "error: invalid_value: Invalid value: 'x'",
        "error: speaker device lost",
    ]
    assert state.errors == 2
    assert state.notice == Notice("info", "muted") and state.notice_at == 6.5


def test_link_stages_and_call_info_are_kept_with_their_times() -> None:
    events: list[Timed] = [
        (0.3, LinkState("signaling", 0.3)),
        (0.5, LinkState("ICE connectivity checks", 0.5)),
        (0.6, LinkState("DTLS handshake", 0.6)),
        (0.7, LinkState("data channel open", 0.7)),
        (0.8, LinkState("session.created", 0.8)),
        (
            0.9,
            CallInfo(
                "https://api.openai.com/v1", "gpt-realtime", "marin", "rtc_1", "webrtc", False
            ),
        ),
    ]
    state = run(events)
    assert [(s.name, s.at_s) for s in state.link.stages][:2] == [
        ("signaling", 0.3),
        ("ICE connectivity checks", 0.5),
    ]
    assert state.link.status is LinkStatus.CONNECTED
    assert link_stages(state)[-2:] == (("session.created", 0.8), ("connected", 0.9))
    assert time_left(state, 60.9) == 3600 - 60.0


def test_a_reconnect_resets_stages_marks_the_gap_and_cuts_off_the_reply() -> None:
    call = CallInfo("https://api.openai.com/v1", "gpt-realtime", "marin", "rtc_1", "webrtc", False)
    events: list[Timed] = [
        (0.3, LinkState("signaling", 0.3)),
        (0.9, call),
        (5.0, ResponseStarted("r1")),
        (5.1, AssistantText("r1", "a1", "Half a", final=False)),
        (6.0, Reconnecting("no audio from api.openai.com for 5 s", attempt=1)),
    ]
    dropped = run(events)
    assert dropped.link.status is LinkStatus.RECONNECTING
    assert dropped.link.stages == ()
    assert view(dropped) == [
        "assistant interrupted: Half a",
        "link: link lost (no audio from api.openai.com for 5 s); reconnecting, attempt 1",
    ]
    events += [
        (6.5, LinkState("signaling", 0.4)),
        (7.4, Reconnected(gap_s=1.4, transport="webrtc")),
        (
            7.4,
            CallInfo(
                "https://api.openai.com/v1", "gpt-realtime", "marin", "rtc_2", "webrtc", False
            ),
        ),
    ]
    back = run(events)
    assert back.link.status is LinkStatus.CONNECTED and back.link.reconnects == 1
    assert back.link.last_cause == "no audio from api.openai.com for 5 s"
    assert [s.name for s in back.link.stages] == ["signaling"]
    assert view(back)[-1] == "link: reconnected over webrtc after 1.4 s"
    assert time_left(back, 7.4) == 3600.0  # the new call has its own cap
    assert isinstance(back.transcript[1], LinkMark)


def test_usage_and_cost_per_turn_and_in_total_for_a_known_model() -> None:
    config = DashboardConfig(prices=PriceTable.load())
    call = CallInfo("https://api.openai.com/v1", "gpt-realtime", "marin", "rtc_1", "webrtc", False)
    events = [
        (0.5, call),
        *spoken_turn("u1", "r1", 1.0, "a", "b"),
        *spoken_turn("u2", "r2", 5, "c", "d"),
    ]
    usage = run(events, config).usage
    assert usage.last_cost == COST_320
    assert usage.total_cost == 2 * COST_320
    assert usage.tokens.input == 264 and usage.tokens.cached == 128 and usage.tokens.output == 376
    assert usage.tokens.audio_out == 294 and usage.responses == 2


def test_an_unknown_model_shows_tokens_without_dollars() -> None:
    config = DashboardConfig(prices=PriceTable.load())
    call = CallInfo("http://127.0.0.1:1/v1", "some-new-model", "marin", "rtc_1", "webrtc", True)
    usage = run([(0.5, call), *spoken_turn("u1", "r1", 1.0, "a", "b")], config).usage
    assert usage.tokens.total == 320
    assert usage.total_cost is None and usage.last_cost is None


def test_a_response_without_usage_is_counted_so_totals_read_as_a_lower_bound() -> None:
    usage = run([(1.0, ResponseFinished("r1", "failed", "server_error", None))]).usage
    assert usage.responses == 1 and usage.without_usage == 1 and usage.tokens.total == 0


def test_context_growth_warns_once_per_turn_input_passes_the_threshold() -> None:
    config = DashboardConfig(context_warn_tokens=200)
    big = {**USAGE_320, "input_token_details": {"text_tokens": 150, "audio_tokens": 73}}
    small = run([(1.0, ResponseFinished("r1", "completed", None, USAGE_320))], config)
    assert [a.kind for a in warnings(small, 2.0)] == []  # 132 input tokens
    grown = reduce(small, ResponseFinished("r2", "completed", None, big), 3.0)
    alerts = warnings(grown, 3.0)
    assert [a.kind for a in alerts] == ["context"]
    assert "223 input tokens" in alerts[0].text


def levels_every_100ms(start: float, end: float, mic: float) -> list[Timed]:
    steps = round((end - start) * 10)
    return [(start + i / 10, Levels(mic, -60.0)) for i in range(steps + 1)]


def test_silent_mic_warns_after_five_seconds_unmuted() -> None:
    silent = levels_every_100ms(0.0, 6.0, float("-inf"))
    state = run(silent)
    assert [a.kind for a in warnings(state, 4.9)] == []
    assert [a.kind for a in warnings(state, 6.0)] == ["silent_mic"]
    assert "for 6 s" in warnings(state, 6.0)[0].text


def test_silent_mic_does_not_warn_while_muted_or_with_sound() -> None:
    muted = Controls(True, "server", "full", False, False, False)
    assert warnings(run([(0.0, muted), *levels_every_100ms(0.1, 8.0, -120.0)]), 8.0) == ()
    assert warnings(run(levels_every_100ms(0.0, 8.0, -55.0)), 8.0) == ()  # a quiet room


def test_speech_energy_the_service_never_detects_warns() -> None:
    loud = levels_every_100ms(0.0, 2.5, -20.0)
    state = run(loud)
    assert [a.kind for a in warnings(state, 2.5)] == ["unheard"]
    # The service does hear the user: no warning.
    heard = run([*loud[:5], (0.45, SpeechMark("u1", "started", 0)), *loud[5:8]])
    assert warnings(heard, 0.8) == ()


def test_speech_energy_while_the_assistant_speaks_or_in_push_to_talk_does_not_warn() -> None:
    speaking = Controls(False, "server", "full", False, False, True)
    assert warnings(run([(0.0, speaking), *levels_every_100ms(0.1, 4.0, -20.0)]), 4.0) == ()
    ptt = Controls(False, "off", "full", True, False, False)
    assert warnings(run([(0.0, ptt), *levels_every_100ms(0.1, 4.0, -20.0)]), 4.0) == ()


def test_short_noises_do_not_add_up_to_unheard_speech() -> None:
    events: list[Timed] = []
    for burst in range(5):  # five 0.5 s noises, 2 s apart: 2.5 s of energy, never 2 s in a run
        start = burst * 2.5
        events += levels_every_100ms(start, start + 0.5, -20.0)
        events += levels_every_100ms(start + 0.6, start + 2.4, -60.0)
    assert warnings(run(events), 12.4) == ()


def turn_with_latency(
    n: int, stop: float, created: float, received: float, played: float
) -> list[Timed]:
    item, response = f"u{n}", f"r{n}"
    return [
        (stop - 1, SpeechMark(item, "started", 0)),
        (stop, SpeechMark(item, "stopped", 0)),
        (created, ResponseStarted(response)),
        (received + 0.01, AudioMark("received", received)),
        (played + 0.05, AudioMark("played", played)),
        (played + 1, ResponseFinished(response, "completed", None, None)),
    ]


def test_latency_per_turn_and_p50_p95_over_the_session() -> None:
    # speech→response 100..500 ms; response→audio 200 ms; audio→played 50 ms.
    events: list[Timed] = []
    for n, wait in enumerate([0.3, 0.1, 0.5, 0.2, 0.4]):
        stop = 10.0 * (n + 1)
        events += turn_with_latency(n, stop, stop + wait, stop + wait + 0.2, stop + wait + 0.25)
    book = run(events).latency
    last = book.current
    assert last is not None
    stages = last.stages_ms()
    assert round(stages["speech_to_response"] or 0) == 400
    assert round(stages["total"] or 0) == 650
    spreads = book.spreads
    assert round(spreads["speech_to_response"].p50 or 0) == 300
    assert round(spreads["speech_to_response"].p95 or 0) == 500
    assert round(spreads["total"].p50 or 0) == 550 and spreads["total"].n == 5
    assert round(spreads["audio_to_playout"].p95 or 0) == 50


def test_a_tool_follow_up_response_ends_the_turn_that_waited_for_it() -> None:
    events: list[Timed] = [
        (1.0, SpeechMark("u1", "stopped", 0)),
        (1.3, ResponseStarted("r1")),  # calls a tool, no audio
        (1.5, ResponseFinished("r1", "completed", None, None)),
        (2.0, ResponseStarted("r2")),  # the follow-up speaks
        (2.2, AudioMark("received", 2.2)),
        (2.3, AudioMark("played", 2.3)),
    ]
    book = run(events).latency
    assert len(book.all()) == 1
    stages = book.all()[0].stages_ms()
    assert round(stages["speech_to_response"] or 0) == 300
    assert round(stages["response_to_audio"] or 0) == 900  # includes the tool's run
    assert round(stages["total"] or 0) == 1300


def test_percentile_is_nearest_rank() -> None:
    assert percentile([], 50) is None
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0
    assert percentile([float(i) for i in range(1, 21)], 95) == 19.0
    assert percentile([7.0], 95) == 7.0


def test_push_to_talk_opens_a_placeholder_that_the_late_transcript_fills() -> None:
    idle = Controls(False, "off", "full", False, False, False)
    talking = Controls(False, "off", "full", True, False, False)
    events: list[Timed] = [
        (0.0, idle),
        (1.0, talking),
        (3.0, idle),  # space again: sent
        (3.4, ResponseStarted("r1")),
        (3.5, AssistantText("r1", "a1", "Yes.", final=True)),
        (4.0, UserText("item_9", "Can you hear me?", final=True)),
    ]
    state = run(events)
    assert view(state) == ["user final: Can you hear me?", "assistant streaming: Yes."]
    current = state.latency.current
    assert current is not None and current.speech_end == 3.0
    assert view(run(events[:2])) == ["user speaking: "]
    assert view(run(events[:3])) == ["user pending: "]


def test_keys_say_what_they_do_in_each_mode() -> None:
    vad = Controls(False, "server", "full", False, False, False)
    assert keys(run([(0, vad)])) == (("space", None), ("m", "mute"), ("Esc", None), ("q", "quit"))
    ptt_idle = Controls(True, "off", "full", False, False, False)
    assert dict(keys(run([(0, ptt_idle)]))) == {
        "space": "talk",
        "m": "unmute",
        "Esc": None,
        "q": "quit",
    }
    ptt_talking = Controls(False, "off", "full", True, False, False)
    assert dict(keys(run([(0, ptt_talking)])))["space"] == "send"
    speaking = Controls(False, "server", "half", False, True, True)
    assert dict(keys(run([(0, speaking)])))["Esc"] == "interrupt"
    # A response being generated can be interrupted before any audio plays.
    assert dict(keys(run([(0, vad), (1, ResponseStarted("r1"))])))["Esc"] == "interrupt"


def test_network_loss_is_shown_overall_and_since_the_last_sample() -> None:
    state = run([(1.0, NetworkStats(40.0, 2.0, 100, 0)), (2.0, NetworkStats(41.0, 2.5, 145, 5))])
    assert state.net.stats is not None and state.net.stats.rtt_ms == 41.0
    assert state.net.recent_loss == 0.1  # 5 lost of 50 expected


def test_level_events_leave_the_transcript_untouched() -> None:
    state = run(spoken_turn("u1", "r1", 1.0, "Hi.", "Hello!"))
    after = reduce(state, Levels(-30.0, -40.0), 10.0)
    assert after.transcript is state.transcript
    assert after.latency is state.latency and after.usage is state.usage


def test_a_long_session_keeps_every_turn_and_an_update_copies_one_chunk() -> None:
    events: list[Timed] = []
    for n in range(300):
        events += spoken_turn(f"u{n}", f"r{n}", 10.0 * n, f"question {n}", f"answer {n}")
    state = run(events)
    assert len(state.transcript) == 600
    texts = view(state)
    assert texts[0] == "user final: question 0" and texts[-1] == "assistant done: answer 299"
    assert texts[301] == "assistant done: answer 150"
    streaming = reduce(state, ResponseStarted("r_next"), 4000.0)
    grown = reduce(streaming, AssistantText("r_next", "a", "more", final=False), 4000.1)
    shared = sum(
        a is b for a, b in zip(streaming.transcript.chunks, grown.transcript.chunks, strict=True)
    )
    assert shared == len(grown.transcript.chunks) - 1
    assert len(grown.transcript.chunks) == -(-601 // CHUNK)
    assert len(state.transcript.keys) == 0  # finished turns are no longer tracked


@given(
    st.lists(
        st.tuples(st.floats(0.0, 2.0), st.floats(0.0, 2.0), st.floats(0.0, 0.5)),
        min_size=1,
        max_size=30,
    )
)
def test_session_percentiles_match_a_sort_of_every_turn(waits: list[tuple[float, ...]]) -> None:
    events: list[Timed] = []
    for n, (respond, audio, play) in enumerate(waits):
        stop = 10.0 * (n + 1)
        created = stop + respond
        events += turn_with_latency(n, stop, created, created + audio, created + audio + play)
    book = run(events).latency
    for stage in ("speech_to_response", "response_to_audio", "audio_to_playout", "total"):
        values = sorted(v for t in book.all() if (v := t.stages_ms()[stage]) is not None)
        spread = book.spreads[stage]
        assert (spread.p50, spread.p95, spread.n) == (
            percentile(values, 50),
            percentile(values, 95),
            len(values),
        )
