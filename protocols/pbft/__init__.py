"""PBFT (Castro and Liskov, 1999/2002): the lab's byzantine fault tolerant protocol.

options.py     Options and their validation
messages.py    wire messages, WAL records, well_formed checks
auth.py        HMAC signatures with per-replica keys
log.py         per-sequence-number slots and certificates
viewchange.py  VIEW-CHANGE / NEW-VIEW (a mixin of PbftProtocol) and their checks
checkpoint.py  checkpoints, watermarks, state transfer (a mixin of PbftProtocol)
byzantine.py   the misbehaviour wrapper (silent, equivocate, forge, delay-primary)
core.py        PbftProtocol: inputs, the normal case, execution, durability
"""

from protocols.pbft.core import PbftProtocol
from protocols.pbft.messages import MESSAGES, RECORDS
from protocols.pbft.options import Options

__all__ = ["MESSAGES", "RECORDS", "Options", "PbftProtocol"]
