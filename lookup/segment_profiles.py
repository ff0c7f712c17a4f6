"""Segment Profile API answers as the hub's models, and hub namespaces as Segment identifiers.

Identifiers (``CAHUB_SEGMENT_IDENTIFIERS``) list the identifier types the space
resolves (default ``phone,email,user_id``), optionally with ``Namespace=type`` pairs
(``CRMID=user_id``, ``Phone_E.164=phone_number``). A candidate's namespace maps to a
type by its pair, else ``Phone``/``Phone_E.164``/``mobilePhone`` → ``phone`` and
``Email`` → ``email`` when that type is listed, else a namespace spelled like a listed
type maps to it; candidates of any other namespace are not asked.

Traits become XDM-shaped attributes where the meaning is plain: ``name`` →
``person.name.fullName``; ``first_name``/``firstName``, ``last_name``/``lastName`` →
``person.name.firstName``/``lastName``; ``email`` → ``personalEmail.address``. Every
other trait is kept as it came under ``segment.traits`` (a field map can read, say,
``segment.traits.lifetime_value``). Events become ``ExperienceEvent``s whose type is the
event name (``Order Completed``) and whose data are its ``properties``, with
``context.campaign.name`` copied to ``marketing.campaignName``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from hub.models import ExperienceEvent, Identity

# Hub namespaces with an obvious Segment identifier type; the first of a type names it back.
KNOWN_NAMESPACES = {"Phone_E.164": "phone", "Phone": "phone", "mobilePhone": "phone",
                    "Email": "email"}
TRAIT_PATHS = {
    "name": ("person", "name", "fullName"),
    "first_name": ("person", "name", "firstName"),
    "firstName": ("person", "name", "firstName"),
    "last_name": ("person", "name", "lastName"),
    "lastName": ("person", "name", "lastName"),
    "email": ("personalEmail", "address"),
}


class IdentifierMap:
    """Hub identity namespaces <-> the Segment space's identifier types."""

    def __init__(self, entries: Sequence[str]) -> None:
        pairs = [entry.partition("=") for entry in entries]
        self._pairs = {ns.strip(): kind.strip().lower() for ns, eq, kind in pairs if eq}
        self._types = {kind.strip().lower() for kind, eq, _ in pairs if not eq}
        self._types |= set(self._pairs.values())

    def type_of(self, namespace: str) -> str | None:
        """The identifier type to ask for ``namespace``, or None when the space has none."""
        if namespace in self._pairs:
            return self._pairs[namespace]
        known = KNOWN_NAMESPACES.get(namespace)
        if known in self._types:
            return known
        return namespace.lower() if namespace.lower() in self._types else None

    def namespace_of(self, kind: str) -> str:
        """The hub namespace of a Segment identifier type (the type itself if none)."""
        named = {**{t: ns for ns, t in reversed(KNOWN_NAMESPACES.items())},
                 **{t: ns for ns, t in reversed(self._pairs.items())}}
        return named.get(kind, kind)


def attributes_of(body: Any) -> dict[str, Any]:
    """The ``traits`` of a traits answer, as XDM paths where plain, else ``segment.traits``."""
    traits = body.get("traits") if isinstance(body, dict) else None
    attributes: dict[str, Any] = {}
    others: dict[str, Any] = {}
    for key, value in (traits if isinstance(traits, dict) else {}).items():
        path = TRAIT_PATHS.get(key)
        if path is None:
            others[key] = value
        else:
            _put(attributes, path, value)
    if others:
        attributes["segment"] = {"traits": others}
    return attributes


def identities_of(body: Any, identifiers: IdentifierMap) -> list[Identity]:
    """The ``data`` of an external_ids answer as identities in hub namespaces."""
    items = body.get("data") if isinstance(body, dict) else None
    return [
        Identity(namespace=identifiers.namespace_of(item["type"]), id=item["id"])
        for item in (items if isinstance(items, list) else [])
        if isinstance(item, dict) and _text(item.get("type")) and _text(item.get("id"))
    ]


def profile_id_of(external_ids: Any, traits: Any, asked: str) -> str:
    """The person's ``user_id``, else Segment's own id (``use_…``), else what was asked."""
    items = external_ids.get("data") if isinstance(external_ids, dict) else None
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and item.get("type") == "user_id" and _text(item.get("id")):
            return f"user_id:{item['id']}"
    cursor = traits.get("cursor") if isinstance(traits, dict) else None
    url = cursor.get("url") if isinstance(cursor, dict) else None
    step = url.split("/profiles/", 1)[-1].split("/", 1)[0] if isinstance(url, str) else ""
    return step if step.startswith("use_") else asked


def events_of(body: Any) -> tuple[ExperienceEvent, ...]:
    """The ``data`` of an events answer, newest first."""
    items = body.get("data") if isinstance(body, dict) else None
    events = [_event(item) for item in (items if isinstance(items, list) else [])
              if isinstance(item, dict)]
    present = [event for event in events if event is not None]
    return tuple(sorted(present, key=lambda event: event.timestamp, reverse=True))


def _event(item: Mapping[str, Any]) -> ExperienceEvent | None:
    properties = item.get("properties")
    data = dict(properties) if isinstance(properties, dict) else {}
    campaign = _campaign(item.get("context"))
    if campaign:
        data.setdefault("marketing", {"campaignName": campaign})
    try:
        return ExperienceEvent(id=str(item.get("message_id") or ""), data=data,
                               timestamp=item.get("timestamp"),
                               type=str(item.get("event") or item.get("type") or "unknown"))
    except ValidationError:
        return None


def _campaign(context: Any) -> str | None:
    campaign = context.get("campaign") if isinstance(context, dict) else None
    name = campaign.get("name") if isinstance(campaign, dict) else None
    return name if _text(name) else None


def _put(record: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for step in path[:-1]:
        record = record.setdefault(step, {})
    record[path[-1]] = value


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())
