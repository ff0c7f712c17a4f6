"""The embedded profile store: SQLite, an identity graph, merged profiles, no network."""

from lookup.store.deletion import ForgetReport
from lookup.store.embedded import EmbeddedProfileStore
from lookup.store.report import IngestReport, IngestWarning, Rejection

__all__ = ["EmbeddedProfileStore", "ForgetReport", "IngestReport", "IngestWarning", "Rejection"]
