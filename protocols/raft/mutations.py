"""Raft's named mutations: classic Raft bugs, each one switch (`Options.mutate`) in the code.

Grep for the name (`"no-figure8"`) to find the branch it takes; each branch sits beside the
correct line it replaces, with a comment saying what the correct line prevents.
"""

from __future__ import annotations

from protocols.base.mutations import Mutation, Probe

PAPER = "Raft paper (Ongaro & Ousterhout 2014)"
THESIS = "Raft thesis (Ongaro 2014)"

MUTATIONS: tuple[Mutation, ...] = (
    Mutation(
        name="no-figure8",
        bug="a leader commits an entry of a previous term by counting the replicas that hold it",
        source=f"{PAPER}, section 5.4.2 and Figure 8",
        violations=("divergence", "lost-write", "nonlinearizable"),
        teaches="why a leader counts replicas only for an entry of its own term: a later "
        "leader with a higher-term suffix overwrites the 'committed' entry",
    ),
    Mutation(
        name="forget-vote",
        bug="votedFor is kept in memory only: a node that restarts votes again in the same term",
        source=f"{PAPER}, Figure 2 (persistent state) and section 5.2",
        violations=("split-brain", "lost-write", "divergence", "nonlinearizable"),
        teaches="why the vote is on disk before the reply leaves: a restart within an "
        "election timeout gives one term two leaders",
    ),
    Mutation(
        name="forget-term",
        bug="currentTerm is kept in memory only: a restarted node is back in an old term",
        source=f"{PAPER}, Figure 2 (persistent state)",
        violations=("split-brain", "lost-write", "divergence", "nonlinearizable"),
        teaches="why the term is durable too: a node that forgets it takes the next "
        "candidate's term as new and votes in it a second time",
    ),
    Mutation(
        name="no-up-to-date-check",
        bug="votes are granted without comparing logs: a candidate missing committed entries wins",
        source=f"{PAPER}, section 5.4.1 (election restriction)",
        violations=("lost-write", "divergence", "nonlinearizable"),
        teaches="why a vote needs an up-to-date log: the Leader Completeness property, and "
        "the acknowledged writes a stale leader overwrites without it",
    ),
    Mutation(
        name="ack-before-fsync",
        bug="a follower acknowledges entries before they are durable (written, not fsynced)",
        source=f"{PAPER}, Figure 2 (stable storage before responding to RPCs); "
        "Alagappan et al., 'Correlated Crash Vulnerabilities', OSDI 2016",
        violations=("lost-write", "divergence", "nonlinearizable"),
        teaches="what fsync is for: a power loss takes back entries a majority acknowledged; "
        "a plain crash (SIGKILL) does not, the page cache survives it",
        probe=Probe("power-loss"),  # both followers lose power while the leader is frozen
    ),
    Mutation(
        name="lease-no-drift-bound",
        bug="the lease lasts the full election timeout, not election_timeout / (1 + max_drift)",
        source=f"{THESIS}, section 6.4.1 (leases and clock drift)",
        violations=("lease-overlap", "nonlinearizable"),
        teaches="why a lease is shortened by the drift bound: followers with fast clocks "
        "elect a new leader while the old one still serves lease reads",
    ),
    Mutation(
        name="stale-reply",
        bug="replies from an older term are counted (a vote granted in term t counts in t+1)",
        source=f"{PAPER}, section 5.1 (a message with a stale term is ignored)",
        violations=("split-brain", "lost-write", "divergence", "nonlinearizable"),
        teaches="why every reply carries its term: a delayed vote outlives a re-election "
        "and elects a second leader",
    ),
    Mutation(
        name="read-index-before-commit",
        bug="a new leader serves ReadIndex reads before it committed an entry of its term",
        source=f"{THESIS}, section 6.4 (step 1); {PAPER}, section 8",
        violations=("nonlinearizable",),
        teaches="why a new leader first commits its empty entry: until then its commit "
        "index may lag what the previous leader acknowledged",
    ),
    Mutation(
        name="no-check-quorum-lease",
        bug="lease reads with check-quorum off: nothing makes followers refuse votes",
        source=f"{THESIS}, sections 6.2 and 6.4.1",
        violations=("lease-overlap", "nonlinearizable"),
        teaches="what a lease rests on: the sticky-vote rule; without it a node cut off "
        "from the leader is elected while the leader's lease runs",
    ),
)
