"""The replication slot source: connection, slot administration, frame assembly."""
