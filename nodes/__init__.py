"""Process runtimes: replica, client and broker, with their wire codec, WAL, clock and state machine."""
