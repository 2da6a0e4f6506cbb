"""EPaxos (Moraru, Andersen and Kaminsky, SOSP 2013), with Sutra's 2019 recovery fix.

options.py      Options and their validation
messages.py     wire messages, the WAL record, `well_formed`
instances.py    the instance space entry and the per-key conflict index
execution.py    the dependency graph executor (iterative Tarjan SCCs)
core.py         EPaxosProtocol: inputs, command leading, commit, timers, status
lead.py         Lead: the phase a replica drives for one instance (leading or recovering)
recovery.py     explicit Prepare, TryPreAccept, no-op (a mixin of EPaxosProtocol)
catchup.py      instances missed while down or cut off: holes, Sync (a mixin too)
checkpoint.py   checkpoints and compaction of executed instances (a mixin too)
invariants.py   checks over several replicas for tests (committed attributes agree)

The mixins declare the core state and methods they use and import nothing from core.py.
"""

from protocols.epaxos.core import EPaxosProtocol
from protocols.epaxos.messages import MESSAGES, RECORDS
from protocols.epaxos.options import Options

__all__ = ["MESSAGES", "RECORDS", "EPaxosProtocol", "Options"]
