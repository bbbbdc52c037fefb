"""Pure decoding of the streaming replication protocol and pgoutput (protocol version 1).

Nothing here does I/O: the replication module hands in CopyData payloads and sends out
the bytes built here.
"""
