"""PBFT's named mutations: classic bugs, each one switch (`Options.mutate`) in the code.

Grep for the name to find the branch it takes; each branch sits beside the correct line it
replaces, with a comment saying what the correct line prevents.
"""

from __future__ import annotations

from protocols.base.mutations import Mutation

PAPER = "Castro & Liskov, 'Practical Byzantine Fault Tolerance' (OSDI 1999)"

MUTATIONS: tuple[Mutation, ...] = (
    Mutation(
        name="floor-quorum",
        bug="the 2f+1 quorum computed one short (2f): two quorums share only f replicas",
        source=f"{PAPER}, section 4.2 (quorums of 2f+1 intersect in an honest replica)",
        violations=("split-brain", "divergence"),
        teaches="why 2f+1 out of 3f+1: with one fewer, a single equivocating primary makes "
        "two honest replicas commit different requests at one number",
    ),
    Mutation(
        name="skip-verify",
        bug="certificates are accepted without checking the signatures of what they hold",
        source=f"{PAPER}, sections 4.4 and 4.5 (certificates of signed messages)",
        # Every replica that believes the made-up certificate executes the same request
        # nobody ordered: the replicas may agree, and clients read a value never written.
        violations=("split-brain", "divergence", "nonlinearizable", "lost-write"),
        teaches="why every message inside a certificate is verified: a liar signs its own "
        "envelope and makes up the honest replicas' votes inside it",
    ),
    Mutation(
        name="view-change-no-proof",
        bug="a new primary's pre-prepares ignore the prepared certificates of the old view",
        source=f"{PAPER}, section 4.4 (NEW-VIEW re-issues every prepared request)",
        violations=("divergence", "split-brain"),
        teaches="what the view change carries across: a request committed at one replica "
        "is given a different number, or its number another request, in the new view",
    ),
)
