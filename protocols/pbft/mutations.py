"""PBFT's named mutations: classic bugs, each one switch (`Options.mutate`) in the code.

Grep for the name to find the branch it takes; each branch sits beside the correct line it
replaces, with a comment saying what the correct line prevents.
"""

from __future__ import annotations

from protocols.base.mutations import Mutation

MUTATIONS: tuple[Mutation, ...] = ()
