"""Benchmark suite: catch-up vs pg_recvlogical, streaming latency, peak memory.

Each benchmark starts its own throwaway PostgreSQL 18 clusters; see bench/README.md.
"""
