"""Primary-backup replication with view changes, as a labctl protocol plugin.

messages.py  the wire messages and the WAL records
protocol.py  PrimaryBackup: the state machine (docs/adding-a-protocol.md walks through it)
"""

from labctl_pb.protocol import Options, PrimaryBackup

__all__ = ["Options", "PrimaryBackup"]
