"""A correct lin-kv: n0 is the only leader (it reports so) and holds the one copy of the
map in memory; the other nodes forward every request to it and relay its answer. No
partition can make it answer wrongly; a request cut off from n0 is never answered (the
client's timeout makes it info)."""

from mnode import Node

node = Node()
data: dict = {}


def apply(body: dict) -> dict:
    key = str(body["key"])
    if body["type"] == "read":
        if key not in data:
            return {"type": "error", "code": 20, "text": "no such key"}
        return {"type": "read_ok", "value": data[key]}
    if body["type"] == "write":
        data[key] = body["value"]
        return {"type": "write_ok"}
    if key not in data:
        return {"type": "error", "code": 20, "text": "no such key"}
    if data[key] != body["from"]:
        return {"type": "error", "code": 22, "text": "from does not match"}
    data[key] = body["to"]
    return {"type": "cas_ok"}


def handle(msg: dict) -> None:
    body = msg["body"]
    if node.id == node.ids[0]:
        node.reply(msg, apply(body))
        return
    fwd = {k: v for k, v in body.items() if k != "msg_id"}
    node.rpc(node.ids[0], fwd, lambda answer: node.reply(
        msg, {k: v for k, v in answer["body"].items() if k not in ("msg_id", "in_reply_to")}))


def started() -> None:
    if node.id == node.ids[0]:
        node.report_role("leader", 1)
    else:
        node.report_role("follower", 1)


node.on_init = started
for kind in ("read", "write", "cas"):
    node.on(kind, handle)
node.run()
