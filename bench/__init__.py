"""Benchmarks: each measures one figure of PRODUCT.md §9 and records it in docs/BENCHMARKS.md."""
