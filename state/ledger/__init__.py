"""``hub.ports.CallLedger`` adapters."""
