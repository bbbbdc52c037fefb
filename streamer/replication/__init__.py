"""I/O with the source: connections, slot and publication management, the CopyBoth loop."""
