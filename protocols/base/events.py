"""Telemetry event kinds protocols emit; the checkers and dashboard read these names.

One place for the names so a checker and a protocol cannot disagree on a spelling.
"""

BECAME_LEADER = "became_leader"  # data: term, (how: "elected" | "self-promoted")
STEPPED_DOWN = "stepped_down"  # data: term, reason
BECAME_FOLLOWER = "became_follower"  # data: term, leader
BECAME_CANDIDATE = "became_candidate"  # data: term
VOTE_GRANTED = "vote_granted"  # data: term, to
COMMITTED = "committed"  # data: index, term (sampled by the runtime)
LEASE = "lease"  # data: term, expiry (node clock), expiry_true is added by the runtime
APPLIED = "applied"  # added by the runtime: index, request_id, op
# A node whose WAL was corrupt (nodes/wal.py): the runtime says so at start (data: detail,
# repairing: whether the protocol repairs from its peers or the node refused to start);
# the protocol says when it holds again what it may have lost (data: term, index).
WAL_CORRUPT = "wal_corrupt"
WAL_REPAIRED = "wal_repaired"
# A node's durable floor (data: index, replicas): every command at or below `index` is in a
# snapshot on its disk (fsynced: the batch that wrote it carried it out before this event),
# and it never applies them again, not after a restart either (it restores the snapshot and
# applies only what follows). `replicas` names every replica, so a checker knows whose floor
# it still waits for. Checkers settle and forget what lies below every node's floor; a node
# that never says one (the default, plugins included) holds that floor at 0: nothing is
# forgotten. A wal_corrupt from a node voids its floor until it says one again.
DURABLE_FLOOR = "durable_floor"
# The runtime sends a batch's applied commands as rows (lists, cheaper to build and encode
# than one dict each); the supervisor names the fields in this order. A row has a 9th
# field, `view`, only when the protocol reports one (PBFT).
APPLIED_ROW = ("index", "term", "request_id", "op", "key", "value", "duplicate", "result", "view")
