"""Shipped test kit: a private PulseAudio daemon with a virtual microphone and a virtual speaker.

The recipe (aiortc-notes.md §8), measured on PulseAudio 16:

- one daemon per instance, on a socket in its own temp dir, so nothing else on the machine is
  touched; it is started and stopped through its own PID (never by name);
- ``mic_sink`` (a null sink) whose monitor is remapped to the source ``vmic``: whatever is played
  into ``mic_sink`` is what a program capturing from ``vmic`` hears;
- ``spk`` (a null sink) is the speaker; ``record_speaker`` records its monitor;
- two ``/dev/zero`` feeders (``pacat``, 20 ms latency) keep both null sinks clocked like real
  sound cards. Without the mic's, a null-sink monitor delivers nothing while nothing plays, so a
  capture stream gets no callbacks at all; without the speaker's, every other output stream
  stalls for up to 2 s (the idle null sink's default block) after its first callbacks.
  They play silence, so they change nothing that is played or recorded.

The ALSA ``pulse``/``default`` devices that PortAudio lists follow ``PULSE_SERVER``,
``PULSE_SOURCE`` and ``PULSE_SINK``; PortAudio reads the device list once, when ``sounddevice``
is imported. ``in_process()`` therefore sets the variables and, if sounddevice was imported
earlier, re-initialises PortAudio so that it sees this daemon. Subprocesses get ``env``.

Measured start: about 0.1 s. A fresh null sink first sleeps for its default 2 s block, so the
first capture on ``vmic`` used to wait 2 s; ``start()`` cycles the sinks through suspend/resume
(which restarts them at the feeders' 20 ms) and then probes until ``vmic`` delivers audio.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

MIC_SINK = "mic_sink"
MIC = "vmic"
SPEAKER = "spk"
TOOLS = ("pulseaudio", "pactl", "pacat", "paplay", "parecord", "parec")
SPEECH_TOOLS = ("espeak-ng", "sox")
RATE = 48_000
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 3.0
_REMAP = f"module-remap-source master={MIC_SINK}.monitor source_name={MIC}"


class PulseError(RuntimeError):
    """The test daemon could not be started or driven; the message says which step."""


def missing_tools(tools: tuple[str, ...] = TOOLS) -> list[str]:
    """The programs of ``tools`` that are not on PATH."""
    return [tool for tool in tools if shutil.which(tool) is None]


class PulseAudio:
    """A private PulseAudio daemon: ``vmic`` (the microphone) and ``spk`` (the speaker)."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="voicecli-pulse-"))
        self.runtime = self.root / "rt"
        self.log_path = self.root / "daemon.log"
        self.daemon: subprocess.Popen[bytes] | None = None
        self.feeders: list[subprocess.Popen[bytes]] = []
        self._mic_loaded = True
        self._mic_suspended = False

    @property
    def env(self) -> dict[str, str]:
        """The variables a program needs to use this daemon (merge into ``os.environ``)."""
        return {
            "PULSE_SERVER": f"unix:{self.runtime / 'native'}",
            "PULSE_SOURCE": MIC,
            "PULSE_SINK": SPEAKER,
            "PULSE_RUNTIME_PATH": str(self.runtime),
        }

    @property
    def running(self) -> bool:
        return self.daemon is not None and self.daemon.poll() is None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the daemon and the feeders; return once the virtual mic delivers audio."""
        missing = missing_tools()
        if missing:
            raise PulseError(f"missing PulseAudio programs: {', '.join(missing)}")
        self.runtime.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:  # the child keeps its own copy of the handle
            self.daemon = subprocess.Popen(
                self._daemon_command(),
                env=self._daemon_env(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        try:
            self._wait_for_server()
            self._mic_loaded, self._mic_suspended = True, False
            for sink in (MIC_SINK, SPEAKER):
                self._start_feeder(sink)
            self._wait_for_mic()
        except BaseException:
            self._stop_processes()  # no half-started daemon left behind
            raise

    def stop(self) -> None:
        """Stop the feeders and the daemon (by PID) and remove the temp dir."""
        self._stop_processes()
        shutil.rmtree(self.root, ignore_errors=True)

    def restart(self) -> None:
        """A fresh daemon on the same socket (the same ``env``), e.g. after ``kill()``."""
        self._stop_processes()
        self.start()

    def ensure_ready(self) -> None:
        """Undo what a test did (killed daemon, unloaded or suspended mic) before the next."""
        if not self.running or any(feeder.poll() is not None for feeder in self.feeders):
            self.restart()
            return
        if not self._mic_loaded:
            self.reload_mic()
        if self._mic_suspended:
            self.suspend_mic(False)

    def __enter__(self) -> PulseAudio:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- faults ----------------------------------------------------------------------------

    def kill(self) -> None:
        """The audio server dies (SIGKILL): open streams end, new ones cannot open."""
        if self.daemon is not None and self.daemon.poll() is None:
            self.daemon.send_signal(signal.SIGKILL)
            self.daemon.wait(STOP_TIMEOUT_S)

    def unload_mic(self) -> None:
        """The ``vmic`` source disappears (an unplugged USB mic).

        PulseAudio moves a stream that was capturing from it to the fallback source
        (``mic_sink.monitor``, still fed) without telling the client: capture goes on. A stream
        opened afterwards with ``PULSE_SOURCE=vmic`` fails to open.
        """
        self.pactl("unload-module", self._module_index("module-remap-source"))
        self._mic_loaded = False

    def reload_mic(self) -> None:
        self.pactl("load-module", *_REMAP.split())
        self._mic_loaded = True

    def suspend_mic(self, suspended: bool = True) -> None:
        """``vmic`` stops delivering audio while streams stay open (a stalled device)."""
        self.pactl("suspend-source", MIC, "1" if suspended else "0")
        self._mic_suspended = suspended

    # -- audio in and out ------------------------------------------------------------------

    def play_into_mic(self, wav: Path) -> subprocess.Popen[bytes]:
        """Start "speaking" ``wav`` into the virtual mic at real-time pace.

        Always ``wait()`` for the returned process (``await asyncio.to_thread(p.wait)`` in
        async code); it exits 0 once the whole file has been played.
        """
        return subprocess.Popen(
            ["paplay", "-d", MIC_SINK, str(wav)], env=self._client_env(), stdin=subprocess.DEVNULL
        )

    @contextlib.contextmanager
    def record_speaker(self, path: Path) -> Iterator[subprocess.Popen[bytes]]:
        """Record what is played to ``spk`` into a 48 kHz mono WAV while the block runs.

        ``--latency-msec=20``: with parecord's default buffering a monitor recording holds only
        fragments. It also misses the first 10-40 ms after the sink starts running, so give
        played audio some leading silence.
        """
        command = ["parecord", "-d", f"{SPEAKER}.monitor", "--latency-msec=20", f"--rate={RATE}"]
        command += ["--channels=1", "--format=s16le", "--file-format=wav", str(path)]
        recorder = subprocess.Popen(command, env=self._client_env(), stdin=subprocess.DEVNULL)
        try:
            self._wait_for_client("source-outputs", recorder)
            yield recorder
        finally:
            recorder.send_signal(signal.SIGINT)  # parecord finishes the WAV header on SIGINT
            _wait_or_kill(recorder)

    @contextlib.contextmanager
    def in_process(self) -> Iterator[None]:
        """This process's PortAudio uses the daemon while the block runs (env + re-init)."""
        saved = {name: os.environ.get(name) for name in self.env}
        os.environ.update(self.env)
        _reinit_portaudio()
        try:
            yield
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
            _reinit_portaudio()

    def pactl(self, *args: str) -> str:
        done = subprocess.run(
            ["pactl", *args], env=self._client_env(), capture_output=True, text=True, timeout=10
        )
        if done.returncode != 0:
            raise PulseError(f"pactl {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout

    # -- internals -------------------------------------------------------------------------

    def _daemon_command(self) -> list[str]:
        socket = self.runtime / "native"
        modules = [
            f"module-native-protocol-unix socket={socket} auth-anonymous=1",
            f"module-null-sink sink_name={MIC_SINK} rate={RATE} channels=1",
            _REMAP,
            f"module-null-sink sink_name={SPEAKER} rate={RATE} channels=2",
        ]
        command = ["pulseaudio", "-n", "--daemonize=no", "--exit-idle-time=-1"]
        command += ["--use-pid-file=no", "--log-target=stderr"]
        return command + [f"--load={module}" for module in modules]

    def _daemon_env(self) -> dict[str, str]:
        # Its own HOME and state dir: a root daemon would otherwise write into /root/.config.
        home = self.root / "home"
        home.mkdir(exist_ok=True)
        env = {**os.environ, "HOME": str(home), "PULSE_STATE_PATH": str(self.root / "state")}
        env["PULSE_RUNTIME_PATH"] = str(self.runtime)
        return env

    def _client_env(self) -> dict[str, str]:
        return {**os.environ, **self.env}

    def _wait_for_server(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.daemon is not None and self.daemon.poll() is not None:
                raise PulseError(f"pulseaudio exited at start: {self._log_tail()}")
            if (self.runtime / "native").exists() and _quiet_ok(["pactl", "info"], self.env):
                return
            time.sleep(0.02)
        raise PulseError(f"pulseaudio did not start within {START_TIMEOUT_S} s")

    def _start_feeder(self, sink: str) -> None:
        command = ["pacat", "--playback", "--raw", f"--device={sink}", "--format=s16le"]
        command += [f"--rate={RATE}", "--channels=1", "--latency-msec=20"]
        with open("/dev/zero", "rb") as zeros, self.log_path.open("ab") as log:
            feeder = subprocess.Popen(
                command, env=self._client_env(), stdin=zeros, stdout=subprocess.DEVNULL, stderr=log
            )
        self.feeders.append(feeder)
        self._wait_for_client("sink-inputs", feeder)
        # A fresh null sink first sleeps for its default 2 s block before it honours the
        # feeder's 20 ms latency; a suspend/resume cycle restarts it at 20 ms right away.
        self.pactl("suspend-sink", sink, "1")
        self.pactl("suspend-sink", sink, "0")

    def _wait_for_mic(self) -> None:
        """Read 20 ms from ``vmic``: the first capture client of a fresh daemon waits 1-2 s."""
        command = ["parec", f"--device={MIC}", "--raw", "--format=s16le", f"--rate={RATE}"]
        command += ["--channels=1", "--latency-msec=20"]
        with subprocess.Popen(command, env=self._client_env(), stdout=subprocess.PIPE) as probe:
            assert probe.stdout is not None
            ready, _, _ = select.select([probe.stdout], [], [], START_TIMEOUT_S)
            got_audio = bool(ready) and bool(probe.stdout.read(1))
            probe.kill()  # the with block then closes the pipe and reaps it
        if not got_audio:
            raise PulseError(f"the virtual mic gave no audio within {START_TIMEOUT_S} s")

    def _wait_for_client(self, kind: str, client: subprocess.Popen[bytes]) -> None:
        """Until ``client`` has a stream on the daemon: parecord needs 100-300 ms to connect,
        and a recording that starts later misses the start of what is played."""
        needle = f'application.process.id = "{client.pid}"'
        deadline = time.monotonic() + START_TIMEOUT_S
        while needle not in self.pactl("list", kind):
            if client.poll() is not None or time.monotonic() > deadline:
                raise PulseError(f"pid {client.pid} did not connect (exit {client.poll()})")
            time.sleep(0.02)

    def _module_index(self, name: str) -> str:
        for line in self.pactl("list", "short", "modules").splitlines():
            fields = line.split()
            if len(fields) > 1 and fields[1] == name:
                return fields[0]
        raise PulseError(f"{name} is not loaded")

    def _stop_processes(self) -> None:
        for process in [*self.feeders, self.daemon]:
            if process is not None and process.poll() is None:
                process.terminate()
                _wait_or_kill(process)
        self.feeders, self.daemon = [], None

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-500:].strip()
        except OSError:
            return "(no log)"


def speech_wav(text: str, path: Path, *, lead_ms: int = 300, tail_ms: int = 200) -> Path:
    """Speech as a 48 kHz mono 16-bit WAV (espeak-ng, then sox), padded with silence.

    The leading silence covers the 10-40 ms a monitor recording misses at its start.
    """
    raw = path.with_suffix(".espeak.wav")
    subprocess.run(["espeak-ng", "-w", str(raw), text], check=True, capture_output=True)
    pad = ["pad", f"{lead_ms / 1000}", f"{tail_ms / 1000}"]
    sox = ["sox", str(raw), "-r", str(RATE), "-c", "1", "-b", "16", str(path), *pad]
    subprocess.run(sox, check=True, capture_output=True)
    raw.unlink()
    return path


def _quiet_ok(command: list[str], env: dict[str, str]) -> bool:
    done = subprocess.run(command, env={**os.environ, **env}, capture_output=True, timeout=10)
    return done.returncode == 0


def _wait_or_kill(process: subprocess.Popen[bytes]) -> None:
    try:
        process.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _reinit_portaudio() -> None:
    """PortAudio lists devices once, at init: make an already imported sounddevice list again.

    Private sounddevice API (the documented way to re-enumerate, python-sounddevice #125);
    it also closes any stream still open, so call it only between tests.
    """
    sd = sys.modules.get("sounddevice")
    if sd is not None:
        sd._terminate()
        sd._initialize()


def has_sound_cards() -> bool:
    """ALSA sees a sound card on this machine (then PortAudio lists devices even with no audio
    server). Tests decide from this, beforehand, which outcome to require."""
    try:
        cards = Path("/proc/asound/cards").read_text().strip()
    except OSError:
        return False
    return bool(cards) and "no soundcards" not in cards
