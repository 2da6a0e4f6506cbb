"""A gossip broadcast node: each new message goes to every neighbour of the topology and
is resent every 200 ms until that neighbour acknowledges it, so partitions heal. Messages
live in memory only: a restarted node has lost everything it had, and neighbours that
were already acknowledged never send those messages again."""

from mnode import Node

node = Node()
messages: set = set()
neighbours: list = []
unacked: dict = {}  # (neighbour, message) -> True while waiting for its ack


def topology(msg: dict) -> None:
    neighbours[:] = msg["body"]["topology"].get(node.id, [])
    node.reply(msg, {"type": "topology_ok"})


def learn(message, source=None) -> None:
    if message in messages:
        return
    messages.add(message)
    for peer in neighbours:
        if peer != source:
            unacked[(peer, message)] = True
            send_gossip(peer, message)


def send_gossip(peer, message) -> None:
    if (peer, message) not in unacked:
        return
    node.rpc(peer, {"type": "gossip", "message": message},
             lambda _reply: unacked.pop((peer, message), None))
    node.after(0.2, lambda: send_gossip(peer, message))


def broadcast(msg: dict) -> None:
    learn(msg["body"]["message"])
    node.reply(msg, {"type": "broadcast_ok"})


def gossip(msg: dict) -> None:
    learn(msg["body"]["message"], msg["src"])
    node.reply(msg, {"type": "gossip_ok"})


def read(msg: dict) -> None:
    node.reply(msg, {"type": "read_ok", "messages": sorted(messages)})


node.on("topology", topology)
node.on("broadcast", broadcast)
node.on("gossip", gossip)
node.on("read", read)
node.run()
