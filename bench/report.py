"""Recording benchmark figures in docs/BENCHMARKS.md, one section per benchmark.

A run replaces its own section and leaves the others, so each benchmark can be re-run
alone; every section carries the machine and the date it was measured on.
"""

from __future__ import annotations

import os
import platform
import re
import statistics
from datetime import UTC, datetime
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "BENCHMARKS.md"
HEADER = """# Benchmarks

Figures measured by the scripts in `bench/`; each section says how to reproduce it.
Machines are noisy: compare medians and ratios measured in the same run.
"""


def percentile(samples: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``samples``, nearest-rank."""
    ordered = sorted(samples)
    index = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def describe(samples_ms: list[float]) -> str:
    """"median / p99 / max" of millisecond samples."""
    return (f"{statistics.median(samples_ms):.2f} / {percentile(samples_ms, 99):.2f} / "
            f"{max(samples_ms):.2f}")


def machine() -> str:
    return (f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}, "
            f"measured {datetime.now(UTC):%Y-%m-%d}")


def record(section: str, body: str) -> None:
    """Replace (or add) ``## section`` in the benchmarks document."""
    text = DOC.read_text() if DOC.exists() else HEADER
    block = f"## {section}\n\n{body.strip()}\n\n"
    pattern = re.compile(rf"^## {re.escape(section)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else \
        text.rstrip() + "\n\n" + block
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(text.rstrip() + "\n")
