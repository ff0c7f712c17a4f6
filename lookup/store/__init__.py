"""The profile store: an identity graph, merged profiles and events, in one SQLite file
(``EmbeddedProfileStore``, the default) or in PostgreSQL (``PostgresProfileStore``)."""

from lookup.store.core import ProfileStore
from lookup.store.deletion import ForgetReport
from lookup.store.embedded import EmbeddedProfileStore
from lookup.store.report import IngestReport, IngestWarning, Rejection

__all__ = ["EmbeddedProfileStore", "ForgetReport", "IngestReport", "IngestWarning",
           "ProfileStore", "Rejection"]
