"""What a protocol tells the lab about the roles its replicas report and the columns its
status has: declared once on the protocol class (`Protocol.roles`, `Protocol.columns`),
read by `labctl status`, the supervisor (who leads), fault targets ("leader",
"followers"), the dashboard, the simulator and the report.

A `Display` is plain data: the supervisor puts `Protocol.display()` into every status
document (and the run's lab.json), so a reader in another process (`labctl status`, the
dashboard, a report of an old run) needs neither the protocol's code nor its name, and
decodes it with `Display.decode` like any input from outside.
"""

from __future__ import annotations

from typing import Any

import msgspec

# How a status column's value is written (`format_cell`; the dashboard adds styles):
# plain     str(value), "-" for None
# percent   a ratio 0..1 as "73%"
# count     a number that is news when not zero (the dashboard highlights it)
# flag      a string that is news when set (a byzantine mode); `absent` when not
# range     `key` and `key2` as "low-high" (PBFT's watermarks)
# role      the role, styled by what it is in the role vocabulary
# lease     a lease's expiry (the dashboard draws a bar; text shows the seconds left)
FORMATS = ("plain", "percent", "count", "flag", "range", "role", "lease")


class Role(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One role name a replica may report in `status()["role"]`."""

    name: str
    # A node in this role claims leadership: it counts as a leader (two at once in one
    # term is the split brain `labctl status` shouts about), a fault's "leader" names it.
    leads: bool = False
    # A node in this role is trying to lead (an election, a view change).
    candidate: bool = False
    # A candidate that asks for pre-votes first, without raising its term (Raft's
    # pre-vote, thesis 9.6): a `became_candidate` event with pre_vote set puts a node here.
    pre_vote: bool = False
    glyph: str = "·"  # its one-character mark in the dashboard's timeline
    colour: str = "#a9c6de"  # its colour in pictures (labctl report): any CSS colour
    label: str = ""  # the legend's word for it (default: the name)


class Column(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One column of the protocol's rows in `labctl status` and the dashboard."""

    key: str  # the status() field shown
    title: str = ""  # the header (default: the key)
    format: str = "plain"  # one of FORMATS
    priority: int = 5  # a narrow dashboard drops the highest numbers first
    right: bool = False  # right-aligned (numbers)
    # Meaningful only on a node whose role leads (PBFT's next sequence number is the
    # primary's to assign): "-" on every other node.
    leader_only: bool = False
    absent: str = "-"  # shown for a missing value ("flag": what "not set" means)
    key2: str = ""  # "range": the upper bound's field
    dashboard_only: bool = False  # the dashboard has room; `labctl status` leaves it out

    @property
    def header(self) -> str:
        return self.title or self.key


class Display(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A protocol's roles and status columns, with the words it uses for them."""

    roles: tuple[Role, ...]
    columns: tuple[Column, ...]
    leader_word: str = "leader"
    term_word: str = "term"

    def check(self) -> Display:
        """Raise ValueError unless the declaration makes sense (checked when a protocol
        class is defined, and when a display arrives from another process)."""
        names = [r.name for r in self.roles]
        if not names or len(set(names)) != len(names):
            raise ValueError(f"roles must be distinct and at least one, got {names}")
        for r in self.roles:
            if not r.name or r.name in LAB_STATES or len(r.glyph) != 1:
                raise ValueError(f"role {r.name!r}: a name (not {LAB_STATES}), a 1-char glyph")
            if r.leads and r.candidate:
                raise ValueError(f"role {r.name!r} cannot both lead and be a candidate")
        for c in self.columns:
            if c.format not in FORMATS:
                raise ValueError(f"column {c.key!r}: format must be one of {FORMATS}")
            if c.format == "range" and not c.key2:
                raise ValueError(f"column {c.key!r}: a range needs key2")
        return self

    @classmethod
    def decode(cls, doc: Any) -> Display:
        """A display from another process's document: ValueError if it does not fit."""
        try:
            return msgspec.convert(doc, cls).check()
        except msgspec.ValidationError as e:
            raise ValueError(f"bad display: {e}") from None

    def to_doc(self) -> dict[str, Any]:
        return msgspec.to_builtins(self)

    @classmethod
    def of_status(cls, doc: Any) -> Display:
        """The display a `status` document carries (the supervisor puts its protocol's
        there); the leader-based default for a document without one (an older lab)."""
        raw = doc.get("display") if isinstance(doc, dict) else None
        return DEFAULT_DISPLAY if raw is None else cls.decode(raw)

    # -- the role vocabulary -------------------------------------------------------------

    def role(self, name: Any) -> Role | None:
        return next((r for r in self.roles if r.name == name), None)

    def leads(self, role: Any) -> bool:
        r = self.role(role)
        return r is not None and r.leads

    def is_candidate(self, role: Any) -> bool:
        r = self.role(role)
        return r is not None and r.candidate

    @property
    def leaderless(self) -> bool:
        """No role leads (EPaxos: every replica leads the commands it receives)."""
        return not any(r.leads for r in self.roles)

    @property
    def leader_role(self) -> str | None:
        """The role a `became_leader` event puts a node in."""
        return next((r.name for r in self.roles if r.leads), None)

    @property
    def candidate_role(self) -> str | None:
        """The role a `became_candidate` event puts a node in."""
        return next((r.name for r in self.roles if r.candidate), None)

    def role_after(self, event: dict[str, Any]) -> str | None:
        """The role a role-change event puts its node in (None: not a role change, or a
        role this protocol does not have); the dashboard and the report both fold events
        by this one rule, before the node's next status report says its own word."""
        kind = event.get("kind")
        if kind == "became_leader":
            return self.leader_role
        if kind in ("stepped_down", "became_follower"):
            return self.follower_role
        if kind == "became_candidate":
            pre = bool(event.get("pre_vote"))
            exact = next((r.name for r in self.roles if r.candidate and r.pre_vote == pre), None)
            return exact or self.candidate_role
        return None

    @property
    def follower_role(self) -> str:
        """The role a `stepped_down` event puts a node in: the first that neither leads
        nor campaigns."""
        plain = [r.name for r in self.roles if not r.leads and not r.candidate]
        return plain[0] if plain else self.roles[0].name

    @property
    def has_lease(self) -> bool:
        return any(c.format == "lease" for c in self.columns)

    def legend(self) -> str:
        """The timeline's legend: each role's glyph and word, then the lab's states."""
        parts, seen = [], set()
        for r in self.roles:
            if r.glyph in seen:
                continue  # one mark, one word (Raft's pre-candidate shows as a candidate)
            seen.add(r.glyph)
            if r.leads and self.has_lease:
                parts.append(f"{LEASE_GLYPH} {r.label or r.name}+lease")
            parts.append(f"{r.glyph} {r.label or r.name}")
        return " ".join(parts) + f" {PAUSED_GLYPH} paused {DOWN_GLYPH} down"

    # -- the columns ---------------------------------------------------------------------

    def status_columns(self) -> list[Column]:
        """The columns `labctl status` prints (the dashboard shows every one)."""
        return [c for c in self.columns if not c.dashboard_only]


# What the lab itself reports for a replica, never a protocol's role.
LAB_STATES = ("down", "paused", "stopped")
LEASE_GLYPH, PAUSED_GLYPH, DOWN_GLYPH = "█", "‖", "✕"


def format_cell(display: Display, column: Column, node: dict[str, Any]) -> str:
    """One status cell as text; the one place a column's format is written down."""
    v = node.get(column.key)
    if column.leader_only and not display.leads(node.get("role")):
        return "-"
    if column.format == "percent" and isinstance(v, (int, float)) and not isinstance(v, bool):
        return f"{v * 100:.0f}%"
    if column.format == "flag":
        return str(v) if v else column.absent
    if column.format == "range":
        return column.absent if v is None else f"{v}-{_s(node.get(column.key2), column.absent)}"
    return _s(v, column.absent)


def _s(v: Any, absent: str = "-") -> str:
    return absent if v is None else str(v)


# The vocabulary of a leader-based protocol (Raft, naive), the Protocol base's default.
LEADER = Role("leader", leads=True, glyph="▆", colour="#1d4e89")
CANDIDATE = Role("candidate", candidate=True, glyph="░", colour="#f77f00")
FOLLOWER = Role("follower", glyph="·", colour="#a9c6de")
DEFAULT_ROLES = (LEADER, FOLLOWER, CANDIDATE)

DEFAULT_COLUMNS = (
    Column("role", format="role", priority=2),
    Column("term", priority=3, right=True),
    Column("leader", priority=4),
    Column("commit_index", "commit", priority=5, right=True),
    Column("applied_index", "applied", priority=8, right=True, dashboard_only=True),
    Column("log", priority=6, right=True),
    Column("lease_expiry", "lease", format="lease", priority=7, dashboard_only=True),
)
DEFAULT_DISPLAY = Display(DEFAULT_ROLES, DEFAULT_COLUMNS)
