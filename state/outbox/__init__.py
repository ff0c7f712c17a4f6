"""``hub.ports.Outbox`` adapters."""
