"""``hub.ports.SessionRevocations`` adapters."""
