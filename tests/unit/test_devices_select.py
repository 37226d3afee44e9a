"""Choosing a device from a list, and PortAudio's errors as messages (no sound server needed)."""

from __future__ import annotations

import pytest

from voicecli.audio.devices import DeviceInfo, audio_error, portaudio_missing, select_device
from voicecli.errors import EXIT_AUDIO, AudioError, PortAudioMissing


def _dev(
    index: int, name: str, ins: int, outs: int, *, di: bool = False, do: bool = False
) -> DeviceInfo:
    return DeviceInfo(index, name, "Core Audio", ins, outs, 48000.0, di, do)


MAC = [
    _dev(0, "MacBook Pro Microphone", 1, 0, di=True),
    _dev(1, "MacBook Pro Speakers", 0, 2, do=True),
    _dev(2, "USB Audio Device", 1, 2),
    _dev(3, "USB Audio Device 2", 2, 0),
    _dev(4, "Microsoft Teams Audio", 1, 1),
]


def test_no_spec_is_the_default_device_of_that_kind() -> None:
    assert select_device(MAC, None, "input").index == 0
    assert select_device(MAC, "", "output").index == 1
    assert select_device(MAC, "  ", "input").index == 0


def test_without_a_marked_default_the_first_capable_device_is_used() -> None:
    unmarked = [_dev(0, "speaker", 0, 2), _dev(1, "mic", 1, 0)]
    assert select_device(unmarked, None, "input").name == "mic"


def test_digits_are_an_index_and_must_fit_the_kind() -> None:
    assert select_device(MAC, "2", "output").index == 2
    assert select_device(MAC, 4, "input").index == 4
    with pytest.raises(AudioError, match="'MacBook Pro Speakers' \\(#1\\) is not an input device"):
        select_device(MAC, "1", "input")
    with pytest.raises(AudioError, match="there is no audio device #9") as caught:
        select_device(MAC, "9", "input")
    assert caught.value.hint is not None and "'USB Audio Device' (#2)" in caught.value.hint


def test_a_name_part_matches_case_insensitively_among_devices_of_that_kind() -> None:
    assert select_device(MAC, "speakers", "output").index == 1
    assert select_device(MAC, "teams", "input").index == 4
    # "usb audio" names two inputs, but only one of them can play
    assert select_device(MAC, "USB AUDIO", "output").index == 2


def test_an_exact_name_wins_over_longer_names_containing_it() -> None:
    assert select_device(MAC, "usb audio device", "input").index == 2


def test_an_ambiguous_name_part_lists_the_candidates() -> None:
    with pytest.raises(AudioError) as caught:
        select_device(MAC, "micro", "input")
    message = caught.value.message
    assert message.startswith("'micro' matches several input devices: ")
    assert "'MacBook Pro Microphone' (#0)" in message
    assert "'Microsoft Teams Audio' (#4)" in message
    assert caught.value.hint == "give the index, or more of the name"


def test_an_unknown_name_lists_what_there_is() -> None:
    with pytest.raises(AudioError, match="no output device matches 'airpods'") as caught:
        select_device(MAC, "airpods", "output")
    assert caught.value.hint is not None
    assert "'MacBook Pro Speakers' (#1)" in caught.value.hint
    assert "Microphone" not in caught.value.hint  # inputs are no answer for an output


def test_no_device_of_the_kind_at_all() -> None:
    only_speakers = [_dev(0, "speaker", 0, 2, do=True)]
    with pytest.raises(AudioError, match="^no input device found$") as caught:
        select_device(only_speakers, None, "input")
    assert caught.value.exit_code == EXIT_AUDIO
    assert caught.value.hint is not None and "microphone" in caught.value.hint
    with pytest.raises(AudioError, match="^no output device found$"):
        select_device([], "pulse", "output")


def _pa_error(*args: object) -> Exception:
    import sounddevice  # the real exception class, built as sounddevice builds it

    error: Exception = sounddevice.PortAudioError(*args)
    return error


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("Error opening InputStream: Device unavailable", -9985), "is busy or unavailable"),
        (("Invalid sample rate", -9997), "does not support 48000 Hz (rate unsupported)"),
        (("Invalid number of channels", -9998), "does not support mono or stereo"),
        (("Invalid device", -9996), "does not exist"),
        (("Error querying device 7",), "does not exist"),
        (
            ("Error opening InputStream: Illegal combination of I/O devices", -9993),
            "could not be opened",
        ),
        (
            (
                "Error opening InputStream: Unanticipated host error",
                -9999,
                (0, -5, "Input/output error"),
            ),
            "failed: Input/output error (host error -5)",
        ),
        (("Error starting stream: Timed out", -9987), "audio error on the input device"),
    ],
)
def test_portaudio_errors_become_one_line_audio_errors(
    args: tuple[object, ...], expected: str
) -> None:
    mic = _dev(3, "USB Mic", 1, 0)
    error = audio_error(_pa_error(*args), "input", mic, 48000)
    assert isinstance(error, AudioError)
    assert error.exit_code == EXIT_AUDIO
    assert error.message.startswith(("the input device 'USB Mic' (#3) ", "audio error on"))
    assert expected in error.message
    assert "\n" not in error.message
    assert error.hint


def test_the_server_being_down_is_suggested_when_a_device_cannot_be_opened() -> None:
    error = audio_error(_pa_error("Illegal combination of I/O devices", -9993), "output")
    assert error.message == "the output device could not be opened"
    assert error.hint is not None and "audio server" in error.hint


@pytest.mark.parametrize(
    ("system", "command"),
    [
        ("Linux", "sudo apt install libportaudio2"),
        ("Darwin", "brew install portaudio"),
        ("Windows", "pip install --force-reinstall sounddevice"),
    ],
)
def test_a_missing_portaudio_library_names_the_install_command(system: str, command: str) -> None:
    error = portaudio_missing(system)
    assert isinstance(error, PortAudioMissing)
    assert error.exit_code == EXIT_AUDIO
    assert error.message == "the PortAudio library is not installed"
    assert error.hint is not None and command in error.hint
