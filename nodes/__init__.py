"""Process runtimes: replica, client, broker; their wire codec, WAL, clock, state machine."""
