"""One exception tree. Each class carries the process exit code and a hint for the user.

The CLI catches VoiceCliError at its boundary, prints ``error: <message>`` and the hint on one
line each, and exits with ``exit_code``. A traceback is shown only with ``--debug``.
"""

from __future__ import annotations

from typing import ClassVar

# Exit codes, documented in the README. Keep the two in step.
EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_AUTH = 3
EXIT_NETWORK = 4
EXIT_SERVICE = 5
EXIT_TIMEOUT = 6
EXIT_AUDIO = 7
EXIT_INTERRUPTED = 130


class VoiceCliError(Exception):
    """Base of every error voicecli reports to the user."""

    exit_code: ClassVar[int] = EXIT_INTERNAL
    default_hint: ClassVar[str | None] = None

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint if hint is not None else self.default_hint


class UsageError(VoiceCliError):
    """Bad command-line input."""

    exit_code = EXIT_USAGE
    default_hint = "run with --help to see the options"


class ConfigError(UsageError):
    """A configuration file or value that cannot be used."""

    default_hint = "check the file against `voicecli config init` (config.example.toml)"


class InvalidEventError(UsageError):
    """An outgoing realtime event failed schema validation; it was not sent."""

    default_hint = "the event was not sent; this usually comes from configuration (tools, session)"

    def __init__(self, message: str, *, param: str | None = None, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.param = param


class AuthError(VoiceCliError):
    """Missing, rejected or expired credentials."""

    exit_code = EXIT_AUTH
    default_hint = "set OPENAI_API_KEY or run `voicecli auth login`"


class NetworkError(VoiceCliError):
    """The endpoint could not be reached or the connection failed."""

    exit_code = EXIT_NETWORK
    default_hint = "check the network and the base URL; `voicecli doctor` tests each step"


class ServiceError(VoiceCliError):
    """The service answered with an error (HTTP error body or an `error` event)."""

    exit_code = EXIT_SERVICE

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.code = code
        self.status = status


class OperationTimeout(VoiceCliError):
    """An operation did not finish within its time limit."""

    exit_code = EXIT_TIMEOUT
    default_hint = "raise the limit with --timeout"


class AudioError(VoiceCliError):
    """An audio device could not be opened or was lost."""

    exit_code = EXIT_AUDIO
    default_hint = "run `voicecli devices` to list devices, or `voicecli doctor`"


class PortAudioMissing(AudioError):
    """The PortAudio library is not installed; the hint names the install command for the OS."""


class AudioDeviceLost(AudioError):
    """A device that was working went away mid-call (unplugged, or the audio server stopped)."""

    default_hint = "check the device or the audio server, then start again (`voicecli devices`)"
