"""Every node reports itself leader of term 1 (the lab_role message): the split-brain
checker must say two leaders in one term, as it does for a built-in protocol."""

from mnode import Node

node = Node()
node.on_init = lambda: node.report_role("leader", 1)
node.on("echo", lambda msg: node.reply(msg, {"type": "echo_ok", "echo": msg["body"]["echo"]}))
node.run()
