"""``hub.ports.ProfileCache`` adapters."""
