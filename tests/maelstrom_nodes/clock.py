"""Answers "time" with its wall clock (time.time()), to show libfaketime reaching it."""

import time

from mnode import Node

node = Node()
node.on("time", lambda msg: node.reply(msg, {"type": "time_ok", "time": time.time()}))
node.run()
