"""voicecli: a terminal voice assistant for the OpenAI Realtime API."""

__version__ = "0.1.0"
