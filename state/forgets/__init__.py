"""The forget log (``hub.ports.ForgetLog``): forgets for every server process to apply."""
