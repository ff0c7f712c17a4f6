"""The hub's own state, one folder per port it adapts: the call ledger, the outbox and the
screen-pop brokers, each on the engine of a single machine (SQLite, in process) or of several
servers."""
