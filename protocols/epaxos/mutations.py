"""EPaxos's named mutations: classic bugs, each one switch (`Options.mutate`) in the code.

Grep for the name to find the branch it takes; each branch sits beside the correct line it
replaces, with a comment saying what the correct line prevents.
"""

from __future__ import annotations

from protocols.base.mutations import Mutation

TR = "Moraru, Andersen, Kaminsky, 'There is more consensus in egalitarian parliaments' (SOSP 2013)"

MUTATIONS: tuple[Mutation, ...] = (
    Mutation(
        name="single-ballot",
        bug="one ballot per instance: recovery cannot tell the newest vote from an old one",
        source="Sutra, 'On the correctness of Egalitarian Paxos' (IPL 2020, arXiv 2019)",
        violations=("divergence",),
        teaches="why a replica keeps the ballot it promised and the ballot it voted in apart: "
        "two recoveries commit one command with different dependencies",
    ),
    Mutation(
        name="drop-deps",
        bug="a PreAccept reply omits an interfering instance the replica knows of",
        source=f"{TR}, section 4.3 (Phase 1: the reply's deps are the union)",
        violations=("divergence",),
        teaches="what the dependencies are for: two interfering commands that do not depend "
        "on each other execute in different orders at different replicas",
    ),
    Mutation(
        name="small-fast-quorum",
        bug="the fast quorum is one replica short of F + floor((F+1)/2)",
        source=f"{TR}, section 4.4 (fast quorum size); the tech report's optimized quorum",
        violations=("divergence",),
        teaches="why the fast quorum has its size: two fast quorums must share a replica "
        "that saw both commands, or neither depends on the other",
    ),
)
