"""`voicecli doctor` against `voicecli serve` (in-process) and as a real process.

In-process runs call run_doctor as the command does, with the settings a user's environment
would give. CLI runs start `python -m voicecli doctor` with asyncio's subprocess API, so the
in-process server keeps answering while the doctor runs. No audio server is started here:
tests/devices/test_doctor_audio.py covers the audio checks on PulseAudio virtual devices.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.integration.conftest import serve
from voicecli.auth.keys import MemoryKeyStore, resolve_key
from voicecli.config import load_settings
from voicecli.doctor.checks import CheckResult, exit_code
from voicecli.doctor.environment import ConfigState
from voicecli.doctor.suite import DoctorReport, DoctorRequest, run_doctor
from voicecli.rtc.connection import Stage
from voicecli.server.keys import KeyStore
from voicecli.testing.pulse import has_sound_cards

pytestmark = pytest.mark.integration

KEY = "sk-doctor-integration-0123456789"
DEAD_RUN_S = 5.0  # the promise for a run against a dead endpoint


async def _doctor(
    base_url: str | None, key: str | None, tmp_path: Path, toml: str = "", **request: Any
) -> DoctorReport:
    env = {"OPENAI_BASE_URL": base_url} if base_url else {}
    if key:
        env["OPENAI_API_KEY"] = key
    path = tmp_path / "config.toml"
    path.write_text(toml)
    settings = load_settings(path, env)
    config = ConfigState(path, True, None, 0)
    resolved = resolve_key(settings, MemoryKeyStore())
    return await run_doctor(settings, resolved, config, DoctorRequest(**request))


def _row(report: DoctorReport, section: str, name: str) -> CheckResult:
    return next(r for r in report.results if r.section == section and r.name == name)


def _rows(report: DoctorReport, section: str) -> list[CheckResult]:
    return [r for r in report.results if r.section == section]


def _schema() -> dict[str, Any]:
    text = resources.files("voicecli").joinpath("data", "doctor.schema.json").read_text()
    loaded: dict[str, Any] = json.loads(text)
    return loaded


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as probe:  # bound then closed: nothing listens on it afterwards
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def hung_port() -> Iterator[int]:
    """A server that accepts connections (the kernel's backlog) and never says a word."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield int(listener.getsockname()[1])


# ---- against serve -----------------------------------------------------------------------------


async def test_against_serve_network_and_api_pass_and_the_call_times_each_stage(
    tmp_path: Path,
) -> None:
    async with serve() as server:
        report = await _doctor(server.base_url, KEY, tmp_path, call=True)
    for name in ("DNS", "endpoint", "ICE gathering", "large message"):
        assert _row(report, "network", name).status == "ok", _row(report, "network", name)
    for name in ("key", "key valid", "call (--call)"):
        assert _row(report, "api", name).status == "ok", _row(report, "api", name)
    stages = _row(report, "api", "call (--call)").data["stages_ms"]
    assert list(stages) == [stage.value for stage in Stage] + ["hangup"]
    assert all(ms >= 0 for ms in stages.values())
    call_text = _row(report, "api", "call (--call)").measured
    assert "signaling" in call_text and "session.created" in call_text and "hangup" in call_text
    large = _row(report, "network", "large message")
    assert large.data["bytes"] >= 60_000 and large.data["max_message_size"] > 60_000
    assert "models listed" in _row(report, "api", "key valid").measured


async def test_a_rejected_key_fails_with_the_services_message(tmp_path: Path) -> None:
    async with serve(keys=KeyStore.of(["sk-the-right-key-0123456789"], open=False)) as server:
        report = await _doctor(server.base_url, KEY, tmp_path, call=True)
    valid = _row(report, "api", "key valid")
    assert valid.status == "fail"
    assert "Incorrect API key provided" in valid.measured
    assert valid.hint and "voicecli auth login" in valid.hint
    call = _row(report, "api", "call (--call)")
    assert call.status == "fail" and "401" in call.measured
    assert call.data["stages_ms"]["signaling"] >= 0  # the stages before the refusal are timed
    assert _row(report, "network", "endpoint").status == "ok"  # the endpoint itself is fine
    assert KEY not in json.dumps([r.data for r in report.results]) + valid.measured


async def test_no_key_uses_the_embedded_server_and_call_tests_it(tmp_path: Path) -> None:
    report = await _doctor(None, None, tmp_path, call=True)
    assert _row(report, "api", "key").status == "warn"
    assert "embedded local server" in _row(report, "api", "key").measured
    call = _row(report, "api", "call (--call)")
    assert call.status == "ok", call
    assert call.measured.startswith("127.0.0.1:")


# ---- dead endpoints ----------------------------------------------------------------------------


async def test_a_closed_port_fails_fast_with_hints_and_the_rest_still_runs(
    tmp_path: Path, closed_port: int
) -> None:
    started = time.monotonic()
    report = await _doctor(f"http://127.0.0.1:{closed_port}/v1", KEY, tmp_path)
    assert time.monotonic() - started < DEAD_RUN_S
    endpoint = _row(report, "network", "endpoint")
    assert endpoint.status == "fail"
    assert f"connection refused at 127.0.0.1:{closed_port}" in endpoint.measured
    assert endpoint.hint and "nothing listens there" in endpoint.hint
    assert _row(report, "api", "key valid").status == "fail"
    assert _row(report, "network", "ICE gathering").status != "skip"
    assert all(r.status != "skip" for r in _rows(report, "environment"))
    assert exit_code(report.results) == 2


async def test_a_hung_endpoint_is_reported_within_the_time_box(
    tmp_path: Path, hung_port: int
) -> None:
    started = time.monotonic()
    report = await _doctor(f"http://127.0.0.1:{hung_port}/v1", KEY, tmp_path)
    assert time.monotonic() - started < DEAD_RUN_S
    endpoint = _row(report, "network", "endpoint")
    assert endpoint.status == "fail" and "sent no HTTP answer" in endpoint.measured
    assert _row(report, "api", "key valid").status == "fail"


async def test_an_unreachable_stun_server_fails_udp_and_slows_gathering(
    tmp_path: Path,
) -> None:
    toml = '[[network.ice_servers]]\nurls = ["stun:127.0.0.1:9"]\n'
    async with serve() as server:
        started = time.monotonic()
        report = await _doctor(server.base_url, KEY, tmp_path, toml)
    assert time.monotonic() - started < DEAD_RUN_S
    udp = _row(report, "network", "UDP via STUN")
    assert udp.status == "fail" and "stun:127.0.0.1:9" in udp.measured
    ice = _row(report, "network", "ICE gathering")
    assert ice.status == "warn"
    assert ice.hint and "stun:127.0.0.1:9 added no candidate" in ice.hint


# ---- the command -------------------------------------------------------------------------------


def _cli_env(tmp_path: Path, base_url: str) -> dict[str, str]:
    """No audio server (a PULSE_SERVER that is not there), no developer key, no keyring."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "VOICECLI_"))}
    env = {k: v for k, v in env.items() if not k.startswith("PULSE_")}
    env["PULSE_SERVER"] = f"unix:{tmp_path / 'no-pulse'}"
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.null.Keyring"
    env["OPENAI_BASE_URL"] = base_url
    env["OPENAI_API_KEY"] = KEY
    return env


async def _run_cli(*args: str, env: dict[str, str]) -> tuple[int, str, str, float]:
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "voicecli",
        "doctor",
        *args,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode(), time.monotonic() - started


def _cli_rows(data: dict[str, Any], section: str) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in data["checks"] if c["section"] == section}


@pytest.mark.skipif(
    has_sound_cards(), reason="ALSA hardware: PortAudio lists devices even with no audio server"
)
async def test_cli_json_validates_has_no_key_and_audio_fails_without_an_audio_server(
    tmp_path: Path,
) -> None:
    async with serve() as server:
        code, out, err, _ = await _run_cli(
            "--json", "--call", env=_cli_env(tmp_path, server.base_url)
        )
    data = json.loads(out)
    jsonschema.validate(data, _schema())
    assert KEY not in out and KEY not in err
    assert "Traceback" not in err
    audio = _cli_rows(data, "audio")
    assert code == 2 == data["exit_code"]
    assert audio["input device"]["status"] == "fail"
    assert "PulseAudio/PipeWire" in audio["input device"]["hint"]
    assert audio["recording"]["status"] == "skip"
    # The other sections ran regardless, and passed.
    for section in ("network", "api", "environment"):
        for name, row in _cli_rows(data, section).items():
            if name != "UDP via STUN":  # no STUN server configured: nothing to test
                assert row["status"] == "ok", row
    assert list(_cli_rows(data, "api")["call (--call)"]["data"]["stages_ms"])[-1] == "hangup"


async def test_cli_against_a_dead_endpoint_finishes_within_5_s(
    tmp_path: Path, closed_port: int
) -> None:
    env = _cli_env(tmp_path, f"http://127.0.0.1:{closed_port}/v1")
    code, out, err, took = await _run_cli(env=env)
    assert code == 2
    assert took < DEAD_RUN_S, f"took {took:.1f} s"
    assert "connection refused" in out and "nothing listens there" in out
    assert KEY not in out + err


# ---- TLS ---------------------------------------------------------------------------------------


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A certificate for "localhost" (and its key), signed by itself."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def test_https_reachability_times_tls_and_names_an_untrusted_certificate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ssl

    from aiohttp import web

    from voicecli.doctor.network import endpoint

    cert, key = _self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    async def models(_: web.Request) -> web.Response:
        return web.json_response({"data": []}, status=401)

    app = web.Application()
    app.router.add_get("/v1/models", models)
    runner = web.AppRunner(app)
    await runner.setup()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=context).start()
    try:
        untrusted = await endpoint(f"https://localhost:{port}/v1", None)
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # what a user behind a TLS proxy does
        trusted = await endpoint(f"https://localhost:{port}/v1", None)
    finally:
        await runner.cleanup()
    assert untrusted.status == "fail"
    assert "certificate of localhost not trusted" in untrusted.measured
    assert untrusted.hint and "SSL_CERT_FILE" in untrusted.hint
    assert trusted.status == "ok", trusted
    assert list(trusted.data["timings"]) == ["TCP", "TLS", "HTTP"]
    assert trusted.data["status"] == 401


async def test_cli_never_makes_a_billed_call_unconfirmed(tmp_path: Path) -> None:
    # A remote endpoint (that cannot resolve, so nothing leaves this machine) and no terminal
    # to ask on: the call is skipped and says how to run it.
    env = _cli_env(tmp_path, "https://realtime.example.invalid/v1")
    _, out, _, took = await _run_cli("--json", "--call", env=env)
    call = _cli_rows(json.loads(out), "api")["call (--call)"]
    assert call["status"] == "skip" and "--yes" in call["measured"]
    assert took < DEAD_RUN_S
