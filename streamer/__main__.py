"""`python -m streamer`."""

from __future__ import annotations

from streamer.launch import main

main()
