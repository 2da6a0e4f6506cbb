"""Raft's named mutations: classic Raft bugs, each one switch (`Options.mutate`) in the code.

Grep for the name (`"no-figure8"`) to find the branch it takes; each branch sits beside the
correct line it replaces, with a comment saying what the correct line prevents.
"""

from __future__ import annotations

from protocols.base.mutations import Mutation

MUTATIONS: tuple[Mutation, ...] = (
    Mutation(
        name="no-figure8",
        bug="a leader commits an entry of a previous term by counting the replicas that hold it",
        source="Raft paper (Ongaro & Ousterhout 2014), section 5.4.2 and Figure 8",
        violations=("lost-write", "divergence"),
        teaches="why a leader may only count replicas for an entry of its own term: a later "
        "leader with a higher-term suffix overwrites the 'committed' entry",
    ),
    Mutation(
        name="forget-vote",
        bug="votedFor is kept in memory only: a node that restarts votes again in the same term",
        source="Raft paper, Figure 2 (persistent state) and section 5.2",
        violations=("split-brain", "lost-write", "divergence"),
        teaches="why the vote is written to disk before the reply leaves: two leaders in one "
        "term after a restart within an election timeout",
    ),
)
