"""Issue 8 against `voicecli serve`'s fault switches, over real connections (WebRTC, WebSocket).

The talk Link (talk/link.py) runs without audio devices (voicecli.testing.linkrig); `ask` runs
as the CLI runs it. Each test forces one failure and asserts what the user would see: a marked
gap and a working next turn, a silent rollover, a quick clear error, or the WebSocket.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import scripted, serve
from voicecli.app import AskRequest, run_ask
from voicecli.auth.keys import MemoryKeyStore
from voicecli.config import Settings, load_settings
from voicecli.errors import EXIT_AUTH, EXIT_NETWORK, EXIT_SERVICE, VoiceCliError
from voicecli.realtime.events import function_call_output
from voicecli.realtime.session_events import (
    AssistantText,
    ResponseFinished,
    ServiceErrorEvent,
)
from voicecli.server.app import RunningServer
from voicecli.server.faults import ServeFaults
from voicecli.server.keys import KeyStore, Minted
from voicecli.server.peer import Call
from voicecli.server.ws import SocketCall
from voicecli.talk.events import CallInfo, Reconnected, Reconnecting
from voicecli.testing.linkrig import LinkRig

pytestmark = pytest.mark.integration

KEY = "sk-test-Res1lienceMiddle0246wxyz"
JsonObject = dict[str, Any]

DROP_MID_ANSWER = """
[[step]]
on = "text"
match = "first"
[[step.reply]]
say = "Here is the first part of a longer answer that"
[[step.reply]]
drop = true

[[step]]
on = "text"
match = "second"
[[step.reply]]
say = "Second answer."
"""


def settings_for(base_url: str, **flags: Any) -> Settings:
    return load_settings(None, {}, {"api.base_url": base_url, "api.api_key": KEY, **flags})


def live_calls(server: RunningServer) -> list[Call | SocketCall]:
    return list(server.endpoints.calls.values())


def created_items(call: Call | SocketCall) -> list[JsonObject]:
    """The conversation items the client created on that call, in order."""
    events = call.session.received
    return [e["item"] for e in events if e["type"] == "conversation.item.create"]


def texts(items: list[JsonObject]) -> list[tuple[str, str]]:
    out = []
    for item in items:
        if item["type"] == "message":
            out.append((item["role"], item["content"][0]["text"]))
        else:
            out.append((item["type"], item["call_id"]))
    return out


async def finished_turn(rig: LinkRig, count: int) -> None:
    """Until ``count`` responses have completed (not cancelled, not cut off)."""

    def done() -> bool:
        return len([r for r in rig.heard.of(ResponseFinished) if r.status == "completed"]) >= count

    await rig.heard.wait_for(done)


async def answered(rig: LinkRig, words: str) -> None:
    """Until an assistant transcript with ``words`` is complete."""

    def done() -> bool:
        return any(e.final and words in e.text for e in rig.heard.of(AssistantText))

    await rig.heard.wait_for(done)


# ---- reconnect mid-session --------------------------------------------------------------------


async def test_a_call_dropped_mid_answer_reconnects_replays_and_the_next_turn_works(
    tmp_path: Path,
) -> None:
    async with serve(responder=scripted(tmp_path, DROP_MID_ANSWER)) as server:
        rig = LinkRig(settings_for(server.base_url), KEY)
        async with rig.running():
            rig.say("the first question")
            await rig.heard.wait_for(lambda: bool(rig.heard.of(Reconnected)))
            rig.say("the second question")
            await answered(rig, "Second answer")
            (call,) = live_calls(server)
            replayed = texts(created_items(call))
    (lost,) = rig.heard.of(Reconnecting)
    (back,) = rig.heard.of(Reconnected)
    assert lost.attempt == 1 and lost.cause
    assert back.transport == "webrtc" and back.gap_s < 3.0
    assert len(rig.heard.of(CallInfo)) == 2
    assert replayed == [
        ("user", "the first question"),
        ("assistant", "Here is the first part of a longer answer that"),
        ("user", "the second question"),
    ]
    assert rig.failure is None


SLOW_TOOL_THEN_DROP = """
[[step]]
on = "text"
[[step.reply]]
call = "slow_tool"
[[step.reply]]
drop = true

[[step]]
on = "tool_output"
match = "slow_tool: finished"
[[step.reply]]
say = "The tool says it finished."
"""


async def test_a_tool_still_running_at_the_drop_gives_its_output_to_the_new_session(
    tmp_path: Path,
) -> None:
    config = tmp_path / "config.toml"
    tool = 'name = "slow_tool"\ncommand = ["sh", "-c", "sleep 0.8; echo finished"]\n'
    config.write_text(f"[[tools.command]]\n{tool}")
    async with serve(responder=scripted(tmp_path, SLOW_TOOL_THEN_DROP)) as server:
        flags = {"api.base_url": server.base_url, "api.api_key": KEY}
        rig = LinkRig(load_settings(config, {}, flags), KEY)
        async with rig.running():
            rig.say("run the slow tool")
            await answered(rig, "tool says it finished")
            (call,) = live_calls(server)
            replayed = texts(created_items(call))
    assert len(rig.heard.of(Reconnected)) == 1
    call_id = replayed[-1][1]
    assert replayed[-2:] == [("function_call", call_id), ("function_call_output", call_id)]


async def test_a_data_channel_closed_after_a_malformed_event_reconnects() -> None:
    async with serve(faults=ServeFaults(strict_tool_output=True)) as server:
        rig = LinkRig(settings_for(server.base_url), KEY)
        async with rig.running():
            rig.say("hello before")
            await finished_turn(rig, 1)
            rig.send(function_call_output("call_nobody_made", "{}"))  # unknown call id
            await rig.heard.wait_for(lambda: bool(rig.heard.of(Reconnected)))
            rig.say("hello after")
            await finished_turn(rig, 2)
            (call,) = live_calls(server)
            replayed = texts(created_items(call))
    (lost,) = rig.heard.of(Reconnecting)
    assert "data channel closed" in lost.cause and "conversation.item.create" in lost.cause
    assert replayed[:2] == [("user", "hello before"), ("assistant", "hello before")]
    assert replayed[-1] == ("user", "hello after")


async def test_a_silently_vanished_peer_is_noticed_by_liveness_and_reconnected() -> None:
    faults = ServeFaults(drop_after_s=1.0, drop_silently=True)
    settings = {"network.liveness_timeout_s": 1.0}
    async with serve(faults=faults) as server:
        rig = LinkRig(settings_for(server.base_url, **settings), KEY)
        async with rig.running():
            await rig.heard.wait_for(lambda: bool(rig.heard.of(Reconnected)), timeout_s=8)
    (lost, *_) = rig.heard.of(Reconnecting)
    assert "no audio from" in lost.cause
    assert rig.heard.of(Reconnected)[0].gap_s < 3.0


# ---- rollover ---------------------------------------------------------------------------------


async def test_session_expiry_rolls_over_without_an_error_shown() -> None:
    async with serve(faults=ServeFaults(max_session_s=2.0)) as server:
        rig = LinkRig(settings_for(server.base_url), KEY)
        async with rig.running():
            rig.say("remember me")
            await finished_turn(rig, 1)
            await rig.heard.wait_for(lambda: len(rig.heard.of(CallInfo)) >= 2, timeout_s=6)
            rig.say("still there")
            await finished_turn(rig, 2)
            (call,) = live_calls(server)
            replayed = texts(created_items(call))
    assert rig.heard.of(ServiceErrorEvent) == []  # session_expired is not shown as an error
    assert rig.heard.of(Reconnecting) == []
    assert any("time limit" in n for n in rig.heard.notices("info"))
    assert replayed[:2] == [("user", "remember me"), ("assistant", "remember me")]
    assert rig.link.rollovers >= 1


async def test_rollover_before_the_cap_moves_to_a_new_session_at_a_quiet_moment() -> None:
    async with serve() as server:
        settings = settings_for(server.base_url, **{"network.rollover_after_s": 1.0})
        rig = LinkRig(settings, KEY)
        async with rig.running():
            rig.say("keep this")
            await finished_turn(rig, 1)
            await rig.heard.wait_for(lambda: len(rig.heard.of(CallInfo)) >= 2, timeout_s=6)
            await asyncio.sleep(0.3)  # the old call is hung up in the background
            calls = live_calls(server)
            current = rig.heard.of(CallInfo)[-1].call_id
    assert [c.call_id for c in calls] == [current]  # the old ones were hung up
    assert texts(created_items(calls[0]))[:2] == [("user", "keep this"), ("assistant", "keep this")]
    assert rig.heard.of(Reconnecting) == [] and rig.heard.of(ServiceErrorEvent) == []
    assert any("new session" in n for n in rig.heard.notices("info"))


# ---- credentials ------------------------------------------------------------------------------


@dataclass
class CountingKeys(KeyStore):
    minted: int = 0

    def mint(self, session: JsonObject, seconds: int) -> Minted:
        self.minted += 1
        return super().mint(session, seconds)


async def test_an_expired_ephemeral_key_is_reminted_on_reconnect(tmp_path: Path) -> None:
    now = [time.time()]
    keys = CountingKeys(open=True, clock=lambda: now[0])
    async with serve(keys=keys, responder=scripted(tmp_path, DROP_MID_ANSWER)) as server:
        settings = settings_for(server.base_url, **{"auth.mode": "ephemeral"})
        rig = LinkRig(settings, KEY)
        async with rig.running():
            now[0] += 3600  # the minted key expired on the service's clock; ours still trusts it
            rig.say("the first question")  # the call drops
            await rig.heard.wait_for(lambda: bool(rig.heard.of(Reconnected)))
    assert keys.minted == 2  # one at the start, one after the 401 for the stale one
    assert len(rig.heard.of(Reconnecting)) == 1  # the refused key was not a retry to report
    assert rig.heard.notices("warn") == []


# ---- retries and fatal errors on POST /calls --------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code"), [(500, None), (429, "rate_limit_exceeded"), (503, "server_overloaded")]
)
async def test_retryable_call_failures_are_retried_with_backoff(
    status: int, code: str | None
) -> None:
    faults = ServeFaults(fail_calls=status, fail_calls_count=2, fail_calls_code=code)
    async with serve(faults=faults) as server:
        rig = LinkRig(settings_for(server.base_url), KEY)
        started = time.monotonic()
        async with rig.running():
            took = time.monotonic() - started
            rig.say("made it")
            await finished_turn(rig, 1)
    retries = rig.heard.notices("warn")
    assert len(retries) == 2 and all(f"answered {status}" in r for r in retries)
    delays = [float(r.rsplit("trying again in ", 1)[1].split(" s")[0]) for r in retries]
    assert delays[1] > 0 and took >= sum(delays)
    assert len(rig.heard.of(CallInfo)) == 1


async def test_ask_retries_a_500_when_retries_are_configured() -> None:
    faults = ServeFaults(fail_calls=500, fail_calls_count=1)
    async with serve(faults=faults) as server:
        settings = settings_for(server.base_url, **{"network.retry_budget_s": 10.0})
        result = await run_ask(settings, AskRequest("hi there", timeout_s=15), MemoryKeyStore())
    assert result.transcript == "hi there"


@pytest.mark.parametrize(
    ("status", "code", "exit_code"),
    [
        (401, "invalid_api_key", EXIT_AUTH),
        (401, "account_deactivated", EXIT_AUTH),
        (429, "insufficient_quota", EXIT_SERVICE),
        (429, "billing_hard_limit_reached", EXIT_SERVICE),
        (404, "model_not_found", EXIT_SERVICE),
        (400, "invalid_offer", EXIT_SERVICE),
    ],
)
async def test_fatal_failures_are_not_retried(status: int, code: str, exit_code: int) -> None:
    faults = ServeFaults(fail_calls=status, fail_calls_code=code)
    async with serve(faults=faults) as server:
        rig = LinkRig(settings_for(server.base_url), KEY)
        started = time.monotonic()
        with pytest.raises(VoiceCliError) as failed:
            async with rig.running():
                pass
        took = time.monotonic() - started
    assert rig.heard.notices() == []  # no "trying again"
    assert took < 1.0
    assert failed.value.exit_code == exit_code
    assert f"answered {status}" in failed.value.message or "refused the key" in failed.value.message
    assert failed.value.hint


async def test_a_fatal_error_after_retries_keeps_the_services_message() -> None:
    faults = ServeFaults(fail_calls=500)  # every call fails
    async with serve(faults=faults) as server:
        settings = settings_for(server.base_url, **{"network.retry_budget_s": 1.0})
        rig = LinkRig(settings, KEY)
        with pytest.raises(VoiceCliError) as failed:
            async with rig.running():
                pass
    assert failed.value.exit_code == EXIT_SERVICE
    assert "The server had an error" in failed.value.message
    assert "gave up after" in failed.value.message


QUOTA_MID_SESSION = """
[[step]]
on = "text"
[[step.reply]]
error = "insufficient_quota"
message = "You exceeded your current quota, please check your plan and billing details."
type = "insufficient_quota"
"""


async def test_a_fatal_error_event_mid_session_ends_the_call_without_reconnecting(
    tmp_path: Path,
) -> None:
    async with serve(responder=scripted(tmp_path, QUOTA_MID_SESSION)) as server:
        rig = LinkRig(settings_for(server.base_url), KEY)
        async with rig.running():
            rig.say("one more")
            await rig.heard.wait_for(lambda: rig.failure is not None)
    assert rig.failure is not None and rig.failure.exit_code == EXIT_SERVICE
    assert "exceeded your current quota" in rig.failure.message
    assert rig.failure.hint is not None and "billing" in rig.failure.hint
    assert rig.heard.of(Reconnecting) == []
    assert [e.code for e in rig.heard.of(ServiceErrorEvent)] == ["insufficient_quota"]


# ---- WebSocket fallback -----------------------------------------------------------------------


async def test_auto_falls_back_to_the_websocket_when_webrtc_cannot_connect() -> None:
    async with serve(faults=ServeFaults(unreachable_ice=True)) as server:
        settings = settings_for(server.base_url, **{"network.connect_timeout_s": 4.0})
        rig = LinkRig(settings, KEY)
        started = time.monotonic()
        async with rig.running():
            took = time.monotonic() - started
            rig.say("over the socket")
            await finished_turn(rig, 1)
    (info,) = rig.heard.of(CallInfo)
    assert info.transport == "websocket"
    assert took < 4.0, f"the fallback took {took:.1f} s, more than the connect timeout"
    assert any("trying the WebSocket" in n for n in rig.heard.notices("warn"))
    answers = [e.text for e in rig.heard.of(AssistantText) if e.final]
    assert answers == ["over the socket"]
    assert rig.heard.frames > 0  # the reply's audio reached the speaker


async def test_webrtc_only_does_not_fall_back() -> None:
    async with serve(faults=ServeFaults(unreachable_ice=True)) as server:
        settings = settings_for(
            server.base_url,
            **{
                "network.transport": "webrtc",
                "network.connect_timeout_s": 1.0,
                "network.retry_budget_s": 0.0,
            },
        )
        with pytest.raises(VoiceCliError) as failed:
            await run_ask(settings, AskRequest("hi", timeout_s=10), MemoryKeyStore())
    assert failed.value.exit_code == EXIT_NETWORK
    assert "ICE connectivity checks" in failed.value.message


async def test_ask_over_auto_answers_over_the_websocket_when_udp_is_blocked() -> None:
    async with serve(faults=ServeFaults(unreachable_ice=True)) as server:
        settings = settings_for(server.base_url, **{"network.connect_timeout_s": 4.0})
        result = await run_ask(settings, AskRequest("fallback please"), MemoryKeyStore())
    assert result.transport == "websocket"
    assert result.transcript == "fallback please"
    assert result.call_id is None
    assert result.timings["first_audio_s"] is not None  # recorded from the first delta on


async def test_talk_reconnects_over_the_websocket_too() -> None:
    faults = ServeFaults(drop_after_s=1.5)
    async with serve(faults=faults) as server:
        settings = settings_for(server.base_url, **{"network.transport": "websocket"})
        rig = LinkRig(settings, KEY)
        async with rig.running():
            rig.say("before the drop")
            await finished_turn(rig, 1)
            await rig.heard.wait_for(lambda: bool(rig.heard.of(Reconnected)), timeout_s=6)
            rig.say("after the drop")
            await finished_turn(rig, 2)
            calls = live_calls(server)
    assert rig.heard.of(Reconnected)[0].transport == "websocket"
    assert all(isinstance(c, SocketCall) for c in calls)
    assert texts(created_items(calls[-1]))[:2] == [
        ("user", "before the drop"),
        ("assistant", "before the drop"),
    ]


async def test_a_websocket_reconnect_reuses_the_ephemeral_key_still_valid() -> None:
    keys = CountingKeys(open=True)
    async with serve(keys=keys, faults=ServeFaults(drop_after_s=1.5)) as server:
        settings = settings_for(
            server.base_url, **{"network.transport": "websocket", "auth.mode": "ephemeral"}
        )
        rig = LinkRig(settings, KEY)
        async with rig.running():
            await rig.heard.wait_for(lambda: bool(rig.heard.of(Reconnected)), timeout_s=6)
    assert keys.minted == 1  # the cached key, not a new one per attempt
