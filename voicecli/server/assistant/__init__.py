"""The offline speech assistant behind `voicecli serve --responder assistant`.

PocketSphinx hears (recognizer.py, in its own process: worker.py), a few rules answer
(brain.py), eSpeak NG speaks (synth.py); responder.py joins them as a Responder. The speech
packages come with the ``local`` extra; nothing is downloaded at run time.

Importing this package is cheap: the speech libraries load only when used.
"""

from __future__ import annotations

import importlib.util

from voicecli.errors import UsageError

EXTRA_INSTALL = "pip install 'voicecli[local]'"


class MissingExtraError(UsageError):
    """The assistant's speech packages are not installed."""


def missing_packages() -> list[str]:
    """The speech packages the assistant needs and cannot find (empty when it can run)."""
    from voicecli.server.assistant.synth import find_library

    missing = []
    if not _importable("pocketsphinx"):
        missing.append("pocketsphinx")
    if find_library() is None:
        missing.append("espeakng-loader")
    return missing


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # ValueError: a module blocked with sys.modules[name] = None
        return False


def require_extra() -> None:
    """Raise MissingExtraError naming the extra to install when a speech package is missing."""
    missing = missing_packages()
    if missing:
        raise MissingExtraError(
            f"the assistant responder needs {' and '.join(missing)}: {EXTRA_INSTALL}",
            hint="or choose another responder: --responder echo",
        )
