"""Environment checks: Python, package versions, OS, keyring backend, config file, terminal."""

from __future__ import annotations

import os
import platform
import shutil
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from voicecli.doctor.checks import Finding, fail, ok, warn
from voicecli.doctor.runner import in_thread, one_line
from voicecli.errors import ConfigError, VoiceCliError

SECTION = "environment"
MIN_PYTHON = (3, 11)
# Distribution name -> what users call it.
PACKAGES = {
    "voicecli": "voicecli",
    "aiortc": "aiortc",
    "aioice": "aioice",
    "av": "PyAV",
    "sounddevice": "sounddevice",
    "numpy": "numpy",
    "openai": "openai",
    "aiohttp": "aiohttp",
}


@dataclass(frozen=True)
class ConfigState:
    """How loading the config went (the command loads it before the checks run)."""

    path: Path
    exists: bool
    error: ConfigError | None = None
    keys_set: int = 0


async def python_version() -> Finding:
    version = platform.python_version()
    text = f"{platform.python_implementation()} {version}"
    data = {"version": version, "executable": sys.executable}
    if sys.version_info[:2] < MIN_PYTHON:
        return fail(text, "voicecli needs Python 3.11 or newer", **data)
    return ok(text, **data)


async def packages() -> Finding:
    versions: dict[str, str | None] = {}
    for dist, label in PACKAGES.items():
        try:
            versions[label] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[label] = None
    versions["PortAudio"] = await in_thread(_portaudio_version)
    text = ", ".join(f"{name} {v or 'missing'}" for name, v in versions.items())
    missing = [name for name, v in versions.items() if v is None and name != "PortAudio"]
    if missing:
        return fail(text, f"reinstall voicecli ({', '.join(missing)} missing)", versions=versions)
    return ok(text, versions=versions)


def _portaudio_version() -> str | None:
    from voicecli.audio.devices import load_sounddevice

    try:
        sd = load_sounddevice()
    except VoiceCliError:
        return None  # the audio section says why, with the install command
    return str(sd.get_portaudio_version()[1]).removeprefix("PortAudio ").split(",")[0]


async def operating_system() -> Finding:
    system = f"{platform.system()} {platform.release()} {platform.machine()}"
    name = _distribution()
    wsl = _is_wsl()
    text = f"{name} ({system})" if name else system
    if wsl:
        text += "; WSL: audio goes through WSLg's PulseAudio server"
    return ok(text, system=platform.system(), release=platform.release(), wsl=wsl, name=name)


def _distribution() -> str | None:
    try:
        return platform.freedesktop_os_release().get("PRETTY_NAME")
    except OSError:
        return None


def _is_wsl() -> bool:
    try:
        return "microsoft" in Path("/proc/version").read_text().lower()
    except OSError:
        return False


async def keyring_backend(key_configured: bool) -> Finding:
    name, usable = await in_thread(_keyring)
    if usable:
        return ok(name, backend=name, usable=True)
    text = f"{name}: no keyring backend"
    if key_configured:
        return ok(f"{text} (not needed: the key comes from elsewhere)", backend=name, usable=False)
    return warn(
        text,
        "`voicecli auth login` cannot store a key here; set OPENAI_API_KEY instead",
        backend=name,
        usable=False,
    )


def _keyring() -> tuple[str, bool]:
    import keyring
    from keyring.backends import fail as failing
    from keyring.backends import null

    backend = keyring.get_keyring()
    name = f"{type(backend).__module__}.{type(backend).__name__}"
    # fail: no backend found; null: configured to store nothing (PYTHON_KEYRING_BACKEND).
    return name, not isinstance(backend, failing.Keyring | null.Keyring)


async def config_file(state: ConfigState) -> Finding:
    data = {"path": str(state.path), "exists": state.exists, "parses": state.error is None}
    if state.error is not None:
        # The rest of the run used the defaults (and the environment) instead.
        message = one_line(state.error.message) + " (the checks used the defaults)"
        return fail(message, state.error.hint, **data)
    if not state.exists:
        return ok(f"{state.path} (not present: defaults)", **data)
    return ok(f"{state.path} (parses; {state.keys_set} keys set)", **data)


async def terminal() -> Finding:
    from rich.console import Console

    console = Console(stderr=False)
    size = shutil.get_terminal_size()
    facts = {
        "stdin_tty": sys.stdin is not None and sys.stdin.isatty(),
        "stdout_tty": sys.stdout.isatty(),
        "colours": console.color_system or "none",
        "size": f"{size.columns}x{size.lines}",
        "term": os.environ.get("TERM", ""),
        "encoding": sys.stdout.encoding or "",
    }
    tty = "TTY" if facts["stdin_tty"] and facts["stdout_tty"] else "not a TTY"
    text = f"{tty}, colours {facts['colours']}, {facts['size']}, TERM={facts['term'] or '-'}"
    return ok(text + f", {facts['encoding']}", **facts)
