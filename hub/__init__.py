"""Customer Activity Hub core: the models, ports and the inbound-call use case.

Nothing in this package talks to the network or reads configuration on import;
``app.create_app`` builds every adapter and hands it in.
"""
