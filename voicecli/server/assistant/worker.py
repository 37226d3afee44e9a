"""The recogniser's own process, and the client the server uses to talk to it.

PocketSphinx holds the GIL while it decodes (about 250 ms at once when an utterance ends), so
in-process, even in a thread, it would stall the server's event loop and the 20 ms audio it
paces for every call. The worker keeps one warm decoder; the server sends it 16 kHz audio and
gets the transcript back.

Protocol (stdin/stdout, each message a 4-byte big-endian length and that many bytes):
worker → ``{"ready": true}`` once loaded (or ``{"error": …}``); then per request, server →
``{"cmn": …}`` and the audio (s16le, 16 kHz, mono), worker → ``{"text", "cmn", "passes"}``.
Closing stdin ends the worker.

Run as ``python -m voicecli.server.assistant.worker``.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import select
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import IO, Any

from voicecli.server.assistant.recognizer import Heard

log = logging.getLogger(__name__)

_LENGTH = struct.Struct(">I")
START_TIMEOUT_S = 60.0  # model loading: ~1.5 s on a busy 2-core machine
REQUEST_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 2.0


class RecognizerError(RuntimeError):
    """The recogniser process failed, died or did not answer in time."""


# ---- the worker side ---------------------------------------------------------------------------


def _send(out: IO[bytes], message: bytes) -> None:
    out.write(_LENGTH.pack(len(message)) + message)
    out.flush()


def _receive(stream: IO[bytes]) -> bytes | None:
    header = stream.read(_LENGTH.size)
    if len(header) < _LENGTH.size:
        return None
    (length,) = _LENGTH.unpack(header)
    body = stream.read(length)
    return body if len(body) == length else None


def serve(requests: IO[bytes], replies: IO[bytes]) -> int:
    """The worker's loop: load, say ready, answer until stdin closes."""
    from voicecli.server.assistant.recognizer import TwoPassRecognizer

    try:
        recognizer = TwoPassRecognizer()
    except Exception as exc:  # reported to the server, which turns it into a user message
        _send(replies, json.dumps({"error": f"{type(exc).__name__}: {exc}"}).encode())
        return 1
    _send(replies, b'{"ready": true}')
    while True:
        header, audio = _receive(requests), _receive(requests)
        if header is None or audio is None:
            return 0
        heard = recognizer.transcribe(audio, json.loads(header).get("cmn"))
        reply = {"text": heard.text, "cmn": heard.cmn, "passes": heard.passes}
        _send(replies, json.dumps(reply).encode())


def main() -> int:
    # The protocol gets its own copy of stdout; fd 1 then points at stderr, so anything the
    # C libraries print can never corrupt a message.
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    return serve(sys.stdin.buffer, replies)


# ---- the server side ---------------------------------------------------------------------------


class RecognizerProcess:
    """A warm recogniser in its own process; ``transcribe`` blocks (call it in a thread).

    One request at a time; a worker that died is started again on the next request.
    """

    def __init__(self, command: Sequence[str] | None = None) -> None:
        self._command = list(command or [sys.executable, "-m", __name__])
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._ready = False
        self._registered = False

    def start(self) -> None:
        """Start loading now (returns at once); the first request waits for it."""
        with self._lock:
            self._spawn()

    def transcribe(self, pcm16k: bytes, cmn: str | None = None) -> Heard:
        with self._lock:
            try:
                return self._request(pcm16k, cmn)
            except RecognizerError:
                self._stop()
                raise

    def close(self) -> None:
        with self._lock:
            self._stop()

    def _request(self, pcm16k: bytes, cmn: str | None) -> Heard:
        process = self._spawn()
        if not self._ready:
            self._await_ready(process)
        assert process.stdin is not None and process.stdout is not None
        try:
            _send(process.stdin, json.dumps({"cmn": cmn}).encode())
            _send(process.stdin, pcm16k)
        except (BrokenPipeError, OSError) as exc:
            raise RecognizerError(f"the recogniser process is gone ({exc})") from None
        reply = self._read_message(process, REQUEST_TIMEOUT_S)
        try:
            passes = [(str(name), float(ms)) for name, ms in reply.get("passes", [])]
            return Heard(str(reply["text"]), str(reply["cmn"]), passes)
        except (KeyError, TypeError, ValueError, AttributeError):
            raise RecognizerError(f"the recogniser answered {str(reply)[:200]}") from None

    def _spawn(self) -> subprocess.Popen[bytes]:
        if self._process is not None and self._process.poll() is None:
            return self._process
        self._stop()
        self._process = subprocess.Popen(
            self._command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        self._ready = False
        if not self._registered:
            atexit.register(self.close)
            self._registered = True
        return self._process

    def _await_ready(self, process: subprocess.Popen[bytes]) -> None:
        started = time.monotonic()
        reply = self._read_message(process, START_TIMEOUT_S)
        if not reply.get("ready"):
            raise RecognizerError(str(reply.get("error", "the recogniser did not start")))
        self._ready = True
        log.debug("recogniser ready after %.2f s", time.monotonic() - started)

    def _read_message(self, process: subprocess.Popen[bytes], timeout_s: float) -> Any:
        assert process.stdout is not None
        deadline = time.monotonic() + timeout_s
        header = _read_exact(process.stdout, _LENGTH.size, deadline)
        body = _read_exact(process.stdout, _LENGTH.unpack(header)[0], deadline)
        try:
            return json.loads(body)
        except ValueError:
            raise RecognizerError("the recogniser sent a message that is not JSON") from None

    def _stop(self) -> None:
        process, ready = self._process, self._ready
        self._process, self._ready = None, False
        if process is None:
            return
        if not ready:  # still loading a model nobody used (a typed `ask`): do not wait for it
            process.terminate()
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _read_exact(stream: IO[bytes], count: int, deadline: float) -> bytes:
    """``count`` bytes from a pipe, or RecognizerError at EOF or past the deadline."""
    fd, data = stream.fileno(), b""
    while len(data) < count:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise RecognizerError("the recogniser did not answer in time")
        chunk = os.read(fd, count - len(data))
        if not chunk:
            raise RecognizerError("the recogniser process ended unexpectedly")
        data += chunk
    return data


if __name__ == "__main__":
    sys.exit(main())
