"""The doctor run: which checks, in which groups, with which time boxes.

Time boxes keep a default run (no --call, --play or --echo-test) within 5 s even against a
dead endpoint: the network and API checks give up after 2-4 s, side by side, while the audio
group (PortAudio start, device list, eight brief opens, the 2 s recording) takes about 3 s.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial

from voicecli.auth.keys import ResolvedKey
from voicecli.config import Settings
from voicecli.doctor import api, audio, environment, network
from voicecli.doctor.checks import Check, CheckFn, CheckResult
from voicecli.doctor.environment import ConfigState
from voicecli.doctor.runner import Planned, run_plan

SECTIONS = (audio.SECTION, network.SECTION, api.SECTION, environment.SECTION)


@dataclass(frozen=True)
class DoctorRequest:
    """The command line of `voicecli doctor`."""

    input_device: str | None = None
    output_device: str | None = None
    play: bool = False
    echo_test: bool = False
    call: bool = False
    call_confirmed: bool = False


@dataclass
class DoctorReport:
    results: list[CheckResult]
    duration_s: float


def plan(
    settings: Settings, key: ResolvedKey | None, config: ConfigState, request: DoctorRequest
) -> list[Planned]:
    """Every check of a run, in report order."""
    probe = audio.AudioProbe(
        input_spec=request.input_device or settings.audio.input_device or None,
        output_spec=request.output_device or settings.audio.output_device or None,
    )
    api_probe = api_probe_for(settings, key, request)
    return [
        *_audio(probe, request),
        *_network(settings, api_probe),
        *_api(api_probe),
        *_environment(config, key is not None),
    ]


def api_probe_for(
    settings: Settings, key: ResolvedKey | None, request: DoctorRequest
) -> api.ApiProbe:
    return api.ApiProbe(
        settings, key, call_enabled=request.call, call_confirmed=request.call_confirmed
    )


def _check(group: str, section: str, name: str, run: CheckFn, timeout_s: float) -> Planned:
    return Planned(group, Check(section, name, run, timeout_s))


def _audio(probe: audio.AudioProbe, request: DoctorRequest) -> list[Planned]:
    def step(name: str, run: CheckFn, timeout_s: float) -> Planned:
        return _check("audio", audio.SECTION, name, run, timeout_s)

    return [
        step("PortAudio", partial(audio.portaudio, probe), 3.0),
        step("input device", partial(audio.device, probe, "input"), 1.0),
        step("output device", partial(audio.device, probe, "output"), 1.0),
        step("input rates", partial(audio.rates, probe, "input"), 3.0),
        step("output rates", partial(audio.rates, probe, "output"), 3.0),
        step("recording", partial(audio.recording, probe), audio.RECORD_S + 2.5),
        step("tone (--play)", partial(audio.play_tone, probe, request.play), 5.0),
        step("echo (--echo-test)", partial(audio.echo_path, probe, request.echo_test), 8.0),
    ]


def _network(settings: Settings, probe: api.ApiProbe) -> list[Planned]:
    base_url = probe.base_url
    note = "no key yet: voicecli uses its local server for now" if probe.embedded else None
    servers = settings.network.ice_servers
    section = network.SECTION
    return [
        _check("dns", section, "DNS", partial(network.dns, base_url, note), 2.5),
        _check("http", section, "endpoint", partial(network.endpoint, base_url, note), 4.0),
        _check(
            "ice",
            section,
            "ICE gathering",
            partial(network.ice_gathering, servers, probe.loopback),
            3.0,
        ),
        _check("stun", section, "UDP via STUN", partial(network.udp_egress, servers), 2.5),
    ]


def _api(probe: api.ApiProbe) -> list[Planned]:
    call_timeout = probe.settings.network.connect_timeout_s + api.LARGE_REPLY_TIMEOUT_S + 5.0
    return [
        _check("key", api.SECTION, "key", partial(api.key_source, probe), 1.0),
        _check("models", api.SECTION, "key valid", partial(api.key_valid, probe), 3.0),
        _check("api", api.SECTION, "call (--call)", partial(api.call, probe), call_timeout),
        # A network row, measured inside the call: it runs after it, in the same group.
        _check("api", network.SECTION, "large message", partial(api.large_message_row, probe), 1.0),
    ]


def _environment(config: ConfigState, key_configured: bool) -> list[Planned]:
    section = environment.SECTION

    def fact(name: str, run: CheckFn) -> Planned:
        return _check(name, section, name, run, 3.0)

    return [
        fact("Python", environment.python_version),
        fact("packages", environment.packages),
        fact("OS", environment.operating_system),
        fact("keyring", partial(environment.keyring_backend, key_configured)),
        fact("config", partial(environment.config_file, config)),
        fact("terminal", environment.terminal),
    ]


async def run_doctor(
    settings: Settings, key: ResolvedKey | None, config: ConfigState, request: DoctorRequest
) -> DoctorReport:
    started = time.monotonic()
    results = await run_plan(plan(settings, key, config, request))
    results.sort(key=lambda r: SECTIONS.index(r.section))  # stable: plan order within a section
    return DoctorReport(results, time.monotonic() - started)
