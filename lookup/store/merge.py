"""Merge policies: which fragment's value wins, per attribute leaf, when records disagree.

A person's fragments are folded in policy order, each one patched over the result so
far (RFC 7396 merge patch: objects merge key by key; lists and scalars are leaves and
are replaced whole), so the fragment folded last wins each leaf it holds. Nulls were
dropped when the fragment was read (``records.without_nulls``), so a null never erases
a value: XDM has no nulls, it leaves fields out.

- ``timestamp_ordered`` (AEP's default): oldest first by ``_repo.lastModifiedDate`` or,
  when a fragment has none, the time it was ingested; ties in arrival order. The newest
  fragment wins each leaf.
- ``dataset_precedence``: the dataset earliest in ``order`` wins each leaf it holds, so it
  is folded last. Datasets not in ``order`` rank after every listed one, newest first
  among themselves. AEP does not merge unlisted datasets at all; we rank them last
  instead, so that no data silently disappears from a profile because a dataset was
  left out of the list.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from lookup.store.records import DECODE, dump_json

PolicyName = Literal["timestamp_ordered", "dataset_precedence"]
POLICIES = ("timestamp_ordered", "dataset_precedence")
# (dataset, modified_at, ingested_seq, attributes as JSON)
Fragment = tuple[str, int, int, str]


@dataclass(frozen=True)
class MergePolicy:
    """A merge policy and, for dataset precedence, the datasets from strongest down."""

    name: PolicyName = "timestamp_ordered"
    order: tuple[str, ...] = ()
    _rank: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.name not in POLICIES:
            raise ValueError(f"unknown merge policy {self.name!r}; expected one of {POLICIES}")
        object.__setattr__(self, "_rank", {name: n for n, name in enumerate(self.order)})

    @property
    def signature(self) -> str:
        """What the store records so that it can tell when the policy has changed."""
        order = list(self.order) if self.name == "dataset_precedence" else []
        return json.dumps([self.name, order])

    def fold_key(self, fragment: Fragment) -> tuple[int, int, int]:
        """Fragments sorted by this key are folded in order: the last one wins."""
        dataset, modified_at, seq, _ = fragment
        if self.name == "timestamp_ordered":
            return (0, modified_at, seq)
        return (-self._rank.get(dataset, len(self.order)), modified_at, seq)

    def merge(self, fragments: Iterable[Fragment]) -> str | None:
        """The merged attributes of one person's fragments, as JSON; None when there is a
        single fragment, whose attributes are the profile's as they stand."""
        ordered = sorted(fragments, key=self.fold_key)
        if not ordered:
            return "{}"
        if len(ordered) == 1:
            return None
        # The reader that checked the lines at ingest reads them here: two JSON readers
        # could disagree on what a line holds.
        merged: dict[str, Any] = DECODE(ordered[0][3])
        for fragment in ordered[1:]:
            patch(merged, DECODE(fragment[3]))
        merged.pop("identityMap", None)
        return dump_json(merged)


def patch(target: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """Apply ``changes`` (without nulls) to ``target`` in place, as a JSON merge patch."""
    for key, value in changes.items():
        if isinstance(value, dict):
            base = target.get(key)
            target[key] = patch(base if isinstance(base, dict) else {}, value)
        else:
            target[key] = value
    return target
