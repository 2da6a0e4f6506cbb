"""The phase a replica drives for one instance (`Lead`), shared by command leading
(core.py) and recovery (recovery.py); neither owns it, so it lives apart from both."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from protocols.epaxos.messages import Cmds, Deps


@dataclass(slots=True)
class Lead:
    """The phase this replica drives for one instance, as command leader (ballot 0) or as
    recoverer (a higher ballot)."""

    ballot: int
    phase: str  # preaccept | accept | prepare | trypreaccept
    recovery: bool
    cmds: Cmds = ()
    seq: int = 0
    deps: Deps = ()
    # The attributes this ballot's PreAccept carried. `seq`/`deps` grow into the union of
    # the replies; a resend must carry these instead: at ballot 0 a replica that first
    # hears of the instance from a resend marks its vote as the command leader's own
    # (`orig`), and recovery takes such votes for attributes a fast quorum may have
    # committed. Resending the union gave one instance two sets of "original" attributes,
    # recovery picked the wrong one, and two interfering commands committed with neither
    # depending on the other (sim explore, epaxos seed 203495).
    sent_seq: int = 0
    sent_deps: Deps = ()
    deadline: float = math.inf  # a recovery attempt past it starts over, higher
    fast: bool = True  # the fast path is allowed (ballot 0 only)
    all_equal: bool = True
    # The replies of the current phase by sender: PreAcceptReply, AcceptReply, PrepareReply
    # or TryPreAcceptReply, whichever `phase` asked for.
    replies: dict[str, Any] = field(default_factory=dict)
    # TryPreAccept bookkeeping: who holds the attributes, who cannot be in a fast quorum.
    targets: set[str] = field(default_factory=set)
    supporters: set[str] = field(default_factory=set)
    not_in_quorum: set[int] = field(default_factory=set)


def pairwise_max(a: Deps, b: Deps) -> Deps:
    return tuple(x if x >= y else y for x, y in zip(a, b, strict=True))
