"""External nodes: replicas that are the user's own program, speaking Maelstrom's node
protocol (one JSON message per line on stdin and stdout).

`adapter.py` is the replica process the supervisor starts: it runs the program, joins the
fault router under the replica's name and carries messages between the two. `services.py`
is Maelstrom's service nodes (lin-kv, seq-kv, lww-kv), `workload.py` the Maelstrom-style
client, `names.py` the vocabulary all three share, `program.py` how a program is started
(its environment, libfaketime, what is kept of its stderr).
"""
