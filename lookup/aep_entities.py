"""Reading the AEP Profile access (Entities) API's answers into the hub's models.

A profile answer is a JSON object keyed by the merged profile's XID, not by the
identity asked: ``{"<xid>": {"entity": {...}, "lastModifiedAt": "...", "sources":
[...]}}``. An entry with an empty ``entity`` (AEP's epoch-zero placeholder) is no
profile. The entity becomes the profile's attributes, except ``identityMap`` and
``identities`` (the profile's identities) and ``segmentMembership`` (its audiences);
``lastModifiedAt`` and ``sources`` are kept under the attribute ``_aep``. Computed
attributes and model scores are ordinary entity fields (``_<tenant>.…``) and stay in
the attributes, for the field map to read.

``AudienceNames`` keeps the names of audiences, fetched once per id.

Parsing is lenient: a malformed part (an identity without an id, an event without a
readable timestamp) is skipped rather than failing the whole profile.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from hub.models import ExperienceEvent, Identity
from hub.ports import PermanentError, TransientError

log = logging.getLogger(__name__)

SOURCE = "aep"
NOT_ATTRIBUTES = frozenset({"identityMap", "identities", "segmentMembership"})


def profile_entries(body: Any) -> dict[str, dict[str, Any]]:
    """XID -> entry, for the entries that hold a profile."""
    if not isinstance(body, dict):
        return {}
    return {
        xid: entry for xid, entry in body.items()
        if not xid.startswith("_") and isinstance(entry, dict) and _entity(entry)
    }


def attributes_of(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The entity's fields but identities and audiences, with ``_aep`` metadata."""
    attributes = {k: v for k, v in _entity(entry).items() if k not in NOT_ATTRIBUTES}
    metadata = {k: entry[k] for k in ("lastModifiedAt", "sources") if k in entry}
    if metadata:
        attributes["_aep"] = metadata
    return attributes


def identities_of(entry: Mapping[str, Any]) -> tuple[Identity, ...]:
    """The profile's identities, from ``identityMap`` and the ``identities`` array."""
    entity = _entity(entry)
    found = [*_from_identity_map(entity.get("identityMap")),
             *_from_identity_list(entity.get("identities"))]
    return tuple(dict.fromkeys(found))


def memberships_of(entry: Mapping[str, Any]) -> dict[str, str]:
    """Audience id -> status, from ``segmentMembership.ups`` (statuses may be ``xdm:``)."""
    segments = _entity(entry).get("segmentMembership")
    ups = segments.get("ups") if isinstance(segments, dict) else None
    if not isinstance(ups, dict):
        return {}
    return {
        audience: str(detail.get("status") or detail.get("xdm:status") or "realized")
        for audience, detail in ups.items() if isinstance(detail, dict)
    }


def events_of(body: Any) -> tuple[ExperienceEvent, ...]:
    """The ``children`` of an experience-event answer, newest first."""
    children = body.get("children") if isinstance(body, dict) else None
    if not isinstance(children, list):
        return ()
    events = [_event(child) for child in children if isinstance(child, dict)]
    present = [event for event in events if event is not None]
    return tuple(sorted(present, key=lambda event: event.timestamp, reverse=True))


def audience_name(body: Any) -> str | None:
    """The ``name`` of a Segmentation API audience."""
    name = body.get("name") if isinstance(body, dict) else None
    return name if isinstance(name, str) and name else None


class AudienceNames:
    """Audience id -> name, each fetched once with ``fetch(id, deadline)``, then cached.

    A transient failure leaves the name unknown this time and tries again next time;
    a permanent one (the audience is gone, the credential may not read audiences) is
    remembered as unknown. Names are kept for the provider's life: they rarely change.
    """

    def __init__(self, fetch: Callable[[str, float], str | None]) -> None:
        self._fetch = fetch
        self._names: dict[str, str | None] = {}
        self._lock = threading.Lock()

    def get(self, audience: str, deadline: float | None) -> str | None:
        """The cached name; without a ``deadline``, nothing is fetched."""
        with self._lock:
            if audience in self._names or deadline is None:
                return self._names.get(audience)
        try:
            name = self._fetch(audience, deadline)
        except TransientError as exc:
            log.debug("audience name unavailable: %s", exc)
            return None
        except PermanentError as exc:
            log.warning("audience name refused: %s", exc)
            name = None
        with self._lock:
            self._names[audience] = name
        return name


def _entity(entry: Mapping[str, Any]) -> dict[str, Any]:
    entity = entry.get("entity")
    return entity if isinstance(entity, dict) else {}


def _from_identity_map(identity_map: Any) -> list[Identity]:
    if not isinstance(identity_map, dict):
        return []
    return [
        Identity(namespace=namespace, id=item["id"])
        for namespace, items in identity_map.items() if isinstance(items, list)
        for item in items if isinstance(item, dict) and _usable(item.get("id"))
    ]


def _from_identity_list(identities: Any) -> list[Identity]:
    """``[{"id": "...", "namespace": {"code": "Phone"}}]``, as ``fields=identities`` gives."""
    if not isinstance(identities, list):
        return []
    found = []
    for item in identities:
        namespace = item.get("namespace") if isinstance(item, dict) else None
        code = namespace.get("code") if isinstance(namespace, dict) else None
        if _usable(code) and _usable(item.get("id")):
            found.append(Identity(namespace=code, id=item["id"]))
    return found


def _usable(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _event(child: Mapping[str, Any]) -> ExperienceEvent | None:
    entity = child.get("entity")
    data = entity if isinstance(entity, dict) else {}
    try:
        return ExperienceEvent(
            id=str(child.get("entityId") or data.get("_id") or ""),
            timestamp=data.get("timestamp") or _from_millis(child.get("timestamp")),
            type=str(data.get("eventType") or "unknown"),
            data=data,
        )
    except (ValidationError, TypeError, ValueError, OverflowError):
        return None


def _from_millis(value: Any) -> datetime | None:
    """``children[].timestamp`` is epoch milliseconds."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return datetime.fromtimestamp(value / 1000, UTC)
