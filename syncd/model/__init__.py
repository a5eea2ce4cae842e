"""Pure values and rules, no I/O: the statuses and events of the outbox contract."""
