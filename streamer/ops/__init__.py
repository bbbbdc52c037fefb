"""Operator commands: init/setup, resync, status, verify, replay, check, drop, demo."""
