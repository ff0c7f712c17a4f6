"""``hub.ports.ScreenPopBroker`` adapters."""
