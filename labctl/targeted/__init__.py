"""Targeted schedules: for each named mutation, the one situation its classic bug needs.

`SCHEDULES[(protocol, mutation)]` runs that schedule on a fresh in-memory network with
the mutation on ("" for off) and returns the violation kinds it showed
(`labctl.targeted.kinds.kinds`; the hand-driven EPaxos schedule compares what each
replica committed). The tests assert both halves (the violation with the
mutation, none without); `labctl selftest` falls back on them for a mutation explore did
not catch within its budget.
"""

from __future__ import annotations

from collections.abc import Callable

from labctl.targeted.kinds import kinds

Schedule = Callable[[str, int], set[str]]  # (mutate, seed) -> the violation kinds shown


def _raft(schedule: str, **options: object) -> Schedule:
    def run(mutate: str, seed: int) -> set[str]:
        from labctl.targeted import raft

        opts = dict(options)
        if opts.pop("wide", False):
            opts.update(raft.WIDE)  # the drift bound's gap made wide (see raft.WIDE)
        net = raft.net_for(mutate, seed, **opts)
        getattr(raft, schedule)(net)
        return kinds(net)

    return run


def _epaxos(mutate: str, seed: int) -> set[str]:
    from labctl.targeted import epaxos

    net = epaxos.net_for(mutate, seed)
    epaxos.concurrent_writes(net)
    return kinds(net)


def _three_recoveries(mutate: str, seed: int) -> set[str]:
    from labctl.targeted import epaxos

    return {"divergence"} if epaxos.three_recoveries(mutate) else set()


def _pbft(schedule: str) -> Schedule:
    def run(mutate: str, seed: int) -> set[str]:
        from labctl.targeted import pbft

        net = pbft.net_for(mutate, seed)
        getattr(pbft, schedule)(net)
        return kinds(net)

    return run


SCHEDULES: dict[tuple[str, str], Schedule] = {
    ("raft", "no-figure8"): _raft("figure8_schedule"),
    ("raft", "forget-vote"): _raft("forget_vote_schedule"),
    ("raft", "forget-term"): _raft("forget_vote_schedule"),
    ("raft", "no-up-to-date-check"): _raft("stale_candidate_schedule"),
    ("raft", "ack-before-fsync"): _raft("power_loss_schedule"),
    ("raft", "lease-no-drift-bound"): _raft("fast_follower_clocks_schedule", wide=True),
    ("raft", "stale-reply"): _raft("delayed_vote_schedule", pre_vote=False),
    ("raft", "read-index-before-commit"): _raft("new_leader_read_schedule"),
    ("raft", "no-check-quorum-lease"): _raft("cut_off_candidate_schedule"),
    ("epaxos", "single-ballot"): _three_recoveries,
    ("epaxos", "drop-deps"): _epaxos,
    ("epaxos", "small-fast-quorum"): _epaxos,
    ("pbft", "floor-quorum"): _pbft("one_equivocating_primary"),
    ("pbft", "skip-verify"): _pbft("forged_commit_proof"),
    ("pbft", "view-change-no-proof"): _pbft("committed_at_one_replica_then_view_change"),
}
