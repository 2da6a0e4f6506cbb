"""Per-sequence-number slots: the accepted pre-prepare, the votes, the certificates.

A slot collects prepares and commits by (view, digest), also before its pre-prepare
arrives (a backup's prepare can overtake the primary's pre-prepare on another link) and
for a view this replica has not entered yet (bounded by the core). `cert` is the highest
view prepared certificate, which a view change carries; `decided` is the pre-prepare of
the request the slot committed. Slots at or below the stable checkpoint are dropped.
"""

from __future__ import annotations

from protocols.pbft.messages import Commit, Prepare, PreparedCert, PrePrepare

Key = tuple[int, bytes]  # (view, digest)


class Slot:
    __slots__ = ("cert", "commit_proof", "commits", "decided", "pre_prepare", "prepares", "seq")

    def __init__(self, seq: int) -> None:
        self.seq = seq
        self.pre_prepare: PrePrepare | None = None
        self.prepares: dict[Key, dict[str, Prepare]] = {}
        self.commits: dict[Key, dict[str, Commit]] = {}
        self.cert: PreparedCert | None = None
        self.decided: PrePrepare | None = None
        self.commit_proof: tuple[Commit, ...] = ()

    def add_prepare(self, m: Prepare) -> None:
        self.prepares.setdefault((m.view, m.digest), {})[m.sender] = m

    def add_commit(self, m: Commit) -> None:
        self.commits.setdefault((m.view, m.digest), {})[m.sender] = m

    def prepared_in(self, view: int) -> bool:
        return self.cert is not None and self.cert.pre_prepare.view == view

    def set_cert(self, cert: PreparedCert) -> None:
        """Keep the highest view certificate: a view change reports only the latest."""
        if self.cert is None or cert.pre_prepare.view >= self.cert.pre_prepare.view:
            self.cert = cert

    def forget_views_below(self, view: int) -> None:
        """Votes of views we left can never count again; certificates stay."""
        self.prepares = {k: v for k, v in self.prepares.items() if k[0] >= view}
        self.commits = {k: v for k, v in self.commits.items() if k[0] >= view}


class Log:
    """Slots by sequence number, above the low watermark (the last stable checkpoint)."""

    def __init__(self) -> None:
        self.slots: dict[int, Slot] = {}

    def __len__(self) -> int:
        return len(self.slots)

    def get(self, seq: int) -> Slot | None:
        return self.slots.get(seq)

    def slot(self, seq: int) -> Slot:
        s = self.slots.get(seq)
        if s is None:
            s = self.slots[seq] = Slot(seq)
        return s

    def collect_garbage(self, upto: int) -> None:
        """Drop every slot at or below `upto` (a stable checkpoint covers them)."""
        for seq in [s for s in self.slots if s <= upto]:
            del self.slots[seq]

    def certs_above(self, low: int, high: int) -> list[PreparedCert]:
        return [
            s.cert
            for seq, s in sorted(self.slots.items())
            if low < seq <= high and s.cert is not None
        ]

    def max_seq(self) -> int:
        return max(self.slots, default=0)
