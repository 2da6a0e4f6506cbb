"""The Textual dashboard: `labctl dash` (attach) and, later, `labctl up` in the foreground.

tui/app.py is the entry (`make_app`, `run_dashboard`); tui/source.py reaches a lab only
through labctl (labctl.api, labctl.session), tui/feed.py subscribes to its PUB socket,
tui/telemetry.py feeds the app from that feed and status polls, tui/model.py folds what
arrives into the picture the panels (tui/widgets/) render, tui/actions.py lists what the
keys do, tui/fake.py is a scripted lab for tests.
"""
