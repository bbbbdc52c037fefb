"""Code used only by tests and benchmarks (frame encoder, fakes)."""
