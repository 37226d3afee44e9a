"""Shipped test kit: a plain aiortc offerer for `voicecli serve`. Product code never imports it."""
