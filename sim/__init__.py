"""The simulator: the lab's protocols, faults and workload in seeded virtual time.

A runtime beside nodes/ (the replica processes): the same protocol objects, the runtime's
state machine and session table (nodes/state_machine.py), the workload's operations
(nodes/operations.py), the broker's fencing decision (nodes/broker.py), the fault
vocabulary and role resolution (faults/), on the in-memory network of
protocols/simnet.py in its timed mode. It writes the same records the supervisor writes
(events and history, through a `Sink`), so the lab's checkers judge a simulated run as
they judge a real one. Joining it with scenarios, checkers and run directories is
labctl's job (labctl/simrun.py): this package imports nothing from labctl.

No wall clock, no global random, no set order in behaviour: a plan and its seed replay
the same run byte for byte.
"""

from sim.lab import CPU, Plan, SimLab, Sink

__all__ = ["CPU", "Plan", "SimLab", "Sink"]
