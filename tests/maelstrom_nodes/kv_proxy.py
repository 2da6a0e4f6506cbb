"""lin-kv by proxy: every read, write and cas is passed to a Maelstrom service (argv[1]:
lin-kv, seq-kv or lww-kv) and its answer relayed. Over lin-kv it is linearizable; over
seq-kv or lww-kv it inherits their stale reads."""

import sys

from mnode import Node

node = Node()
service = sys.argv[1] if len(sys.argv) > 1 else "lin-kv"


def proxy(msg: dict) -> None:
    body = {k: v for k, v in msg["body"].items() if k != "msg_id"}
    node.rpc(service, body, lambda answer: node.reply(
        msg, {k: v for k, v in answer["body"].items() if k not in ("msg_id", "in_reply_to")}))


for kind in ("read", "write", "cas"):
    node.on(kind, proxy)
node.run()
