"""The agent desk's state (``hub.ports.AgentDesk``): each call's progress, notes and wrap-up."""
