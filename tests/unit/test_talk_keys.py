"""Key decoding and the terminal mode around it (a real pseudo-terminal, no mocks)."""

from __future__ import annotations

import asyncio
import os
import pty
import termios

from voicecli.talk.keys import Key, decode, key_reader


def test_single_keys() -> None:
    assert decode(b" ") == [Key.SPACE]
    assert decode(b"m") == [Key.MUTE]
    assert decode(b"Q") == [Key.QUIT]
    assert decode(b"\x1b") == [Key.ESC]


def test_several_keys_in_one_read_keep_their_order() -> None:
    assert decode(b"m m") == [Key.MUTE, Key.SPACE, Key.MUTE]


def test_escape_sequences_are_not_esc() -> None:
    assert decode(b"\x1b[A") == []  # arrow up
    assert decode(b"\x1bOP") == []  # F1


def test_other_keys_do_nothing() -> None:
    assert decode(b"xyz\n") == []


async def test_reads_keys_from_a_terminal_and_restores_its_mode() -> None:
    leader, follower = pty.openpty()
    before = termios.tcgetattr(follower)
    keys: list[Key] = []
    got = asyncio.Event()

    def on_key(key: Key) -> None:
        keys.append(key)
        got.set()

    with os.fdopen(follower, "r", closefd=False) as stream:
        with key_reader(asyncio.get_running_loop(), on_key, stream) as active:
            assert active
            assert not termios.tcgetattr(follower)[3] & termios.ICANON  # no Enter needed
            os.write(leader, b"m")
            await asyncio.wait_for(got.wait(), 2)
        assert termios.tcgetattr(follower) == before
    os.close(leader)
    os.close(follower)
    assert keys == [Key.MUTE]


async def test_not_a_terminal_reads_nothing(tmp_path: object) -> None:
    read, write = os.pipe()
    with (
        os.fdopen(read, "r") as stream,
        key_reader(asyncio.get_running_loop(), print, stream) as active,
    ):
        assert not active
    os.close(write)
