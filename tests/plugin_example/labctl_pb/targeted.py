"""The targeted schedule of pb's named mutation, on the in-memory network (simnet).

`PrimaryBackup.targeted` names `SCHEDULES` (protocols/targeted.py): a schedule is
`(mutate, seed) -> violation kinds`, run on a fresh network with the mutation on (and
off: it must then show nothing). `labctl selftest -p pb` uses it when explore does not
catch the mutation in its budget; tests/test_plugin_pb.py asserts both halves.
"""

from __future__ import annotations

from labctl_pb.protocol import PrimaryBackup
from protocols.simnet import SimNet
from protocols.targeted import Schedule, kinds


def cut_off_primary(mutate: str, seed: int) -> set[str]:
    """The primary is cut off and takes a write: with the mutation it commits and
    acknowledges it alone; the next view starts without it, and writes over its index."""
    net = SimNet(PrimaryBackup, 3, seed=seed, options={"mutate": mutate})
    old = net.wait_leader()
    net.put(old, "x", "0")
    net.run_for(0.5)
    net.isolate(old)
    net.put(old, "x", "lost")  # answered ok only by the broken primary
    net.run_for(0.2)
    new = net.wait_leader(5.0, exclude=[old])
    net.put(new, "x", "1")
    net.run_for(0.5)
    net.heal()
    net.run_for(1.5)
    return kinds(net)


SCHEDULES: dict[str, Schedule] = {"commit-alone": cut_off_primary}
