"""Process plumbing: metrics and their endpoint, monitor, health, stopping, progress,
the writer thread, failpoints, database connections."""
