"""Answers "ask" by first asking itself (an RPC to its own node id, as Maelstrom's network
delivers): the reply to the client proves the message to itself came back."""

from mnode import Node

node = Node()


def ask(msg: dict) -> None:
    node.rpc(node.id, {"type": "inner"}, lambda inner: node.reply(
        msg, {"type": "ask_ok", "via": inner["src"], "answer": inner["body"]["answer"]}))


node.on("ask", ask)
node.on("inner", lambda msg: node.reply(msg, {"type": "inner_ok", "answer": 42}))
node.run()
