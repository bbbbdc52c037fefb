"""I/O with the target: schema and the batch writer."""
