"""Doctor API checks that need no server: where the key comes from, and when --call asks."""

from __future__ import annotations

from voicecli.auth.keys import ResolvedKey
from voicecli.config import load_settings
from voicecli.doctor.api import ApiProbe, call, key_source, key_valid, needs_confirmation

KEY = "sk-doctor-unit-0123456789abcd"


def _probe(env: dict[str, str], key: str | None = None, **options: bool) -> ApiProbe:
    resolved = ResolvedKey(key, "env:OPENAI_API_KEY") if key else None
    return ApiProbe(load_settings(None, env), resolved, **options)


async def test_a_key_is_shown_masked_with_its_source() -> None:
    finding = await key_source(_probe({}, KEY))
    assert finding.status == "ok"
    assert "sk-…abcd from env:OPENAI_API_KEY" in finding.measured
    assert KEY not in finding.measured and KEY not in str(finding.data)


async def test_no_key_says_the_embedded_local_server_is_used() -> None:
    probe = _probe({})
    finding = await key_source(probe)
    assert probe.embedded
    assert finding.status == "warn"
    assert "embedded local server" in finding.measured
    assert finding.hint and "voicecli auth login" in finding.hint
    assert (await key_valid(probe)).status == "skip"


async def test_no_key_for_a_remote_endpoint_fails() -> None:
    finding = await key_source(_probe({"OPENAI_BASE_URL": "https://llm.example.com/v1"}))
    assert finding.status == "fail" and "llm.example.com" in finding.measured


async def test_a_local_server_needs_no_key() -> None:
    finding = await key_source(_probe({"OPENAI_BASE_URL": "http://127.0.0.1:8123/v1"}))
    assert finding.status == "ok" and "none needed" in finding.measured


def test_only_a_call_to_a_remote_service_needs_confirmation() -> None:
    remote = {"OPENAI_BASE_URL": "https://api.example.com/v1"}
    assert needs_confirmation(_probe(remote, KEY, call_enabled=True))
    assert not needs_confirmation(_probe(remote, KEY, call_enabled=False))
    local = {"OPENAI_BASE_URL": "http://127.0.0.1:8123/v1"}
    assert not needs_confirmation(_probe(local, KEY, call_enabled=True))
    assert not needs_confirmation(_probe({}, None, call_enabled=True))  # the embedded server


async def test_an_unconfirmed_billed_call_is_skipped_and_says_how_to_run_it() -> None:
    remote = {"OPENAI_BASE_URL": "https://api.example.com/v1"}
    finding = await call(_probe(remote, KEY, call_enabled=True, call_confirmed=False))
    assert finding.status == "skip" and "--yes" in finding.measured
    assert (await call(_probe(remote, KEY))).status == "skip"
