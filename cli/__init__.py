"""The ``cahub`` command line (PRODUCT.md §4): an entry point, like ``web``."""
