"""The hub's own state, one folder per port it adapts: the call ledger, the outbox, the
screen-pop brokers and the console's session revocations, each on the engine of a single
machine (SQLite, in process) or of several servers."""
