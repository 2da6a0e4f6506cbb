"""A program that breaks the protocol on purpose, to show the lab survives it: after init
it prints a line that is not JSON and sends a message to a node that does not exist;
echo works; an echo of "flood" makes it print 200,000 messages as fast as it can."""

import json
import sys

from mnode import Node

node = Node()


def started() -> None:
    sys.stderr.write("about to misbehave\n")
    sys.stdout.write("hello, this is not JSON\n")
    node.send("n9", {"type": "hello"})


def echo(msg: dict) -> None:
    if msg["body"]["echo"] == "flood":
        line = json.dumps({"src": node.id, "dest": "n1", "body": {"type": "spam"}}) + "\n"
        sys.stdout.write(line * 200_000)
        sys.stdout.flush()
    node.reply(msg, {"type": "echo_ok", "echo": msg["body"]["echo"]})


node.on_init = started
node.on("echo", echo)
node.on("spam", lambda msg: None)
node.run()
