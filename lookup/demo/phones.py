"""Fictional phone numbers for the demo, each with the ways people write it.

Numbers outside North America are written with their country code (in several
spellings), since the store reads national formats in its default region, US.
"""

from __future__ import annotations

import random

from lookup.demo import catalog

# Ada's number and the García family landline; never drawn for anyone else.
RESERVED = frozenset({"+14155550134", "+12125550199"})


class PhoneBook:
    """Unused fictional numbers, each with the ways people write it."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.used = set(RESERVED)

    def draw(self, country: str) -> tuple[str, list[str]]:
        while True:
            e164, spellings = self._candidate(country)
            if e164 not in self.used:
                self.used.add(e164)
                return e164, spellings

    def _candidate(self, country: str) -> tuple[str, list[str]]:
        if country in ("US", "CA"):
            codes = catalog.US_AREA_CODES if country == "US" else catalog.CA_AREA_CODES
            return north_american(self.rng.choice(codes), f"01{self.rng.randrange(100):02d}")
        code, lead, digits = self.rng.choice(catalog.FICTION_RANGES[country])
        rest = f"{self.rng.randrange(10**digits):0{digits}d}"
        return international(code, f"{lead}{rest}" if lead.endswith(" 0") else f"{lead} {rest}")


def north_american(area: str, line: str) -> tuple[str, list[str]]:
    """+1 numbers in 555-01xx, in the spellings a CRM collects."""
    spellings = [f"({area}) 555-{line}", f"{area}.555.{line}", f"{area}-555-{line}",
                 f"+1 {area} 555 {line}", f"+1 ({area}) 555-{line}", f"1-{area}-555-{line}"]
    return f"+1{area}555{line}", spellings


def international(code: str, groups: str) -> tuple[str, list[str]]:
    """Numbers outside the default region US must carry their country code."""
    compact = groups.replace(" ", "")
    spellings = [f"+{code} {groups}", f"00{code} {groups}", f"+{code} (0){groups}",
                 f"+{code}{compact}"]
    return f"+{code}{compact}", spellings
