"""Single keys from the terminal: space, m, Esc, q, without Enter and without echo.

Terminals send no key-release, so push-to-talk is a toggle (space starts, space sends). The
terminal is put in cbreak mode (signals such as Ctrl-C still work) and always restored, also
when the call fails. Arrow keys and other escape sequences arrive as ESC + more bytes in one
read; only a lone ESC is the Esc key.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from enum import StrEnum
from typing import TextIO


class Key(StrEnum):
    SPACE = "space"
    MUTE = "m"
    ESC = "esc"
    QUIT = "q"


_BYTES = {b" ": Key.SPACE, b"m": Key.MUTE, b"M": Key.MUTE, b"q": Key.QUIT, b"Q": Key.QUIT}
ESC = b"\x1b"


def decode(data: bytes) -> list[Key]:
    """The keys in one read from the terminal; escape sequences (arrows, F-keys) are ignored."""
    if data == ESC:
        return [Key.ESC]
    if data.startswith(ESC):
        return []  # a sequence such as ESC [ A: not a key of ours
    return [key for byte in data if (key := _BYTES.get(bytes([byte]))) is not None]


@contextlib.contextmanager
def key_reader(
    loop: asyncio.AbstractEventLoop, on_key: Callable[[Key], None], stream: TextIO | None = None
) -> Iterator[bool]:
    """Deliver keys to ``on_key`` on the loop thread; yields False when stdin is not a terminal."""
    stream = stream or sys.stdin
    if not stream.isatty():
        yield False
        return
    fd = stream.fileno()
    with _cbreak(fd):
        loop.add_reader(fd, _read, fd, on_key)
        try:
            yield True
        finally:
            loop.remove_reader(fd)


def _read(fd: int, on_key: Callable[[Key], None]) -> None:
    try:
        data = os.read(fd, 64)
    except OSError:
        return
    for key in decode(data):
        on_key(key)


@contextlib.contextmanager
def _cbreak(fd: int) -> Iterator[None]:
    import termios
    import tty

    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd, termios.TCSANOW)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
