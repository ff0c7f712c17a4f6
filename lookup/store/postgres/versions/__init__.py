"""The store's PostgreSQL migrations, applied in order by ``schema.migrate_store``."""
