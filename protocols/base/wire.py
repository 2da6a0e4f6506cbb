"""Messages every protocol shares: client requests and replies, broker side effects.

Each is a tagged msgspec Struct (the tag is the class name), so the wire codec can decode a
union of these plus a protocol's own peer messages without guessing. Frozen: equality makes
test assertions one line, and nobody mutates a message after it is built.
"""

from __future__ import annotations

import msgspec

# Operations a Command may carry; the state machine (nodes/state_machine.py) gives each meaning.
WRITE_OPS = frozenset({"put", "cas", "order"})
READ_OPS = frozenset({"get"})
OPS = WRITE_OPS | READ_OPS

READ_MODES = ("log", "quorum", "lease")


class Order(msgspec.Struct, frozen=True):
    """The incident's domain: one trade order placed by a user."""

    order_id: str
    user: str
    side: str  # buy | sell
    qty: int
    symbol: str


class Command(msgspec.Struct, frozen=True):
    """One client operation. `request_id` is the same on every retry of the operation."""

    request_id: str
    client: str
    op: str  # put | get | cas | order
    key: str = ""
    value: str | None = None
    expected: str | None = None  # cas: the value the key must hold
    order: Order | None = None

    @property
    def is_write(self) -> bool:
        return self.op in WRITE_OPS


class ClientRequest(msgspec.Struct, frozen=True, tag=True):
    command: Command
    read_mode: str = "log"


class ClientReply(msgspec.Struct, frozen=True, tag=True):
    """status: ok | not_leader | fail | timeout (timeout is only made by clients)."""

    request_id: str
    status: str
    node: str
    term: int | None = None
    seq: int | None = None  # the index the write was decided at
    leader: str | None = None  # for not_leader: the leader this node believes in
    value: str | None = None  # get: the value read; cas: the value found
    error: str | None = None


class BrokerWrite(msgspec.Struct, frozen=True, tag=True):
    """A side effect a leader sends downstream, carrying its fencing token (term/view)."""

    token: int
    node: str
    seq: int
    request_id: str
    order: Order | None = None


class BrokerAck(msgspec.Struct, frozen=True, tag=True):
    request_id: str
    accepted: bool
    highest_token: int


class Bundle(msgspec.Struct, frozen=True, tag=True):
    """Several encoded messages for one destination in one frame: the client traffic of one
    batch (a replica's replies to one client, a load generator's requests to one replica)
    crosses the router once instead of once per message. Never nested."""

    items: list[bytes]


SHARED_MESSAGES: tuple[type[msgspec.Struct], ...] = (
    ClientRequest,
    ClientReply,
    BrokerWrite,
    BrokerAck,
    Bundle,
)
