"""`voicecli doctor`: one small function per check, each returning a CheckResult."""
