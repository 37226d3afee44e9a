"""`voicecli talk`: the live conversation (microphone, speaker, keys, screen) around a Session."""
