"""Transports beside rtc/: the Realtime WebSocket (the fallback when UDP is blocked)."""
