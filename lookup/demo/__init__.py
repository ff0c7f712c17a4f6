"""The bundled demo data set (XDM JSON Lines) and loading it into the embedded store.

The files are written by ``python -m lookup.demo.generate``; see that module for what
they hold. ``DEMO_CALLER`` is Ada Lovelace's number, the caller the demo is built around.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from lookup.store import IngestReport, ProfileStore

DEMO_CALLER = "+14155550134"
DEMO_DIR = Path(__file__).parent
# (kind, dataset, path) in load order: audiences first, so their names are known.
DEMO_FILES: tuple[tuple[Literal["profiles", "events", "audiences"], str, Path], ...] = (
    ("audiences", "audiences", DEMO_DIR / "audiences.jsonl"),
    ("profiles", "crm", DEMO_DIR / "crm.profiles.jsonl"),
    ("profiles", "loyalty", DEMO_DIR / "loyalty.profiles.jsonl"),
    ("events", "events", DEMO_DIR / "events.jsonl"),
)


def load_demo(
    store: ProfileStore, progress: Callable[[int], None] | None = None
) -> list[IngestReport]:
    """Load every demo file into ``store``; one report per file, in load order."""
    reports = []
    for kind, dataset, path in DEMO_FILES:
        with path.open(encoding="utf-8") as lines:
            reports.append(store.ingest(kind, lines, dataset=dataset, progress=progress))
    return reports
