"""Raft (Ongaro and Ousterhout, 2014), complete enough to trust: the lab's safe protocol.

options.py      Options and their validation
messages.py     wire messages and WAL records
log.py          the in-memory log with its snapshot offset
progress.py     the leader's per-follower replication state (flow control)
reads.py        heartbeat rounds, ReadIndex and the lease
core.py         RaftProtocol: inputs, term rules, elections, roles
replication.py  AppendEntries, commitment, snapshots (a mixin of RaftProtocol)
clients.py      client requests and reads (a mixin of RaftProtocol)
"""

from protocols.raft.core import RaftProtocol
from protocols.raft.messages import MESSAGES, RECORDS
from protocols.raft.options import Options

__all__ = ["MESSAGES", "RECORDS", "Options", "RaftProtocol"]
