"""An unsafe lin-kv: writes and cas go to the leader n0, which applies them and then
pushes its new value to every follower (fire and forget); reads are answered from the
local copy at once. Cut a follower off from n0 and it keeps answering with what it had:
stale reads, which the linearizability checker must catch."""

from mnode import Node

node = Node()
data: dict = {}


def apply(body: dict) -> dict:
    key = str(body["key"])
    if body["type"] == "write":
        data[key] = body["value"]
    elif key not in data:
        return {"type": "error", "code": 20, "text": "no such key"}
    elif data[key] != body["from"]:
        return {"type": "error", "code": 22, "text": "from does not match"}
    else:
        data[key] = body["to"]
    for peer in node.ids[1:]:
        node.send(peer, {"type": "push", "key": key, "value": data[key]})
    return {"type": "write_ok" if body["type"] == "write" else "cas_ok"}


def read(msg: dict) -> None:
    key = str(msg["body"]["key"])
    if key in data:
        node.reply(msg, {"type": "read_ok", "value": data[key]})
    else:
        node.reply(msg, {"type": "error", "code": 20, "text": "no such key"})


def update(msg: dict) -> None:
    body = msg["body"]
    if node.id == node.ids[0]:
        node.reply(msg, apply(body))
        return
    fwd = {k: v for k, v in body.items() if k != "msg_id"}
    node.rpc(node.ids[0], fwd, lambda answer: node.reply(
        msg, {k: v for k, v in answer["body"].items() if k not in ("msg_id", "in_reply_to")}))


def push(msg: dict) -> None:
    data[msg["body"]["key"]] = msg["body"]["value"]


node.on("read", read)
node.on("write", update)
node.on("cas", update)
node.on("push", push)
node.run()
