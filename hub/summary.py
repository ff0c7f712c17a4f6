"""Build the agent-facing summary (PRODUCT.md §7) from a call and a profile.

The field map turns XDM dotted paths into the summary's stable fields; it can be
overridden in the TOML ``[fields]`` table. Event titles are written for an agent
reading them in the second before they say hello.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from hub.models import (
    Ambiguity,
    AmbiguousMatch,
    Caller,
    CallerKind,
    CallInfo,
    ExperienceEvent,
    Identity,
    InboundCall,
    PersonFacts,
    Profile,
    Summary,
    SummaryAudience,
    SummaryEvent,
)
from hub.titles import event_title

DEFAULT_FIELDS: dict[str, str | list[str]] = {
    "name": ["person.name.firstName+person.name.lastName", "person.name.fullName"],
    "email": "personalEmail.address",
    "loyalty_tier": "loyalty.tier",
    "lifetime_value": "_cah.scores.lifetimeValue",
    "churn_propensity": "_cah.scores.churnPropensity",
    "last_campaign": "marketing.campaignName",
}
SUMMARY_EVENTS = 10
# The summary's numbers that have a range (PRODUCT.md §7): (lowest, highest), inclusive.
SCORE_RANGES = {"lifetime_value": (-math.inf, math.inf), "churn_propensity": (0.0, 1.0)}


def resolve_path(record: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted XDM path, or None when any step is missing."""
    value: Any = record
    for step in path.split("."):
        if not isinstance(value, Mapping) or step not in value:
            return None
        value = value[step]
    return value


def resolve_field(record: Mapping[str, Any], spec: str | list[str]) -> Any:
    """First non-empty value of the alternatives in ``spec``; ``a+b`` joins with a space."""
    for alternative in [spec] if isinstance(spec, str) else spec:
        parts = [resolve_path(record, path) for path in alternative.split("+")]
        present = [str(part).strip() for part in parts if part not in (None, "")]
        if len(parts) == 1 and present:
            return parts[0]
        if present:
            return " ".join(present)
    return None


def _as_score(value: Any, name: str) -> float | None:
    """A score as a finite number in its range, else None: whatever a provider sent ("NaN",
    an overflowed sum, a propensity of 7), the agent is never shown what cannot be true."""
    try:
        number = None if value is None or isinstance(value, bool) else float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    lowest, highest = SCORE_RANGES[name]
    return number if number is not None and lowest <= number <= highest \
        and math.isfinite(number) else None


def _as_text(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


def _last_campaign(events: tuple[ExperienceEvent, ...], spec: str | list[str]) -> str | None:
    for event in events:
        campaign = _as_text(resolve_field(event.data, spec))
        if campaign:
            return campaign
    return None


def call_info(call: InboundCall, kind: CallerKind, e164: str | None) -> CallInfo:
    """The ``call`` block: the number in E.164 when it is one, else as Twilio sent it."""
    return CallInfo(sid=call.call_sid, **{"from": e164 or call.from_}, to=call.to,
                    caller_kind=kind, verstat=call.stir_verstat or None)


def caller_info(caller: Caller) -> CallInfo:
    """The ``call`` block of a lookup that is not a call (API, CLI): no sid, no ``to``."""
    return CallInfo(sid=None, **{"from": caller.e164 or caller.raw}, to=None,
                    caller_kind=caller.kind)


def person_facts(profile: Profile, fields: Mapping[str, str | list[str]] | None) -> PersonFacts:
    """The agent-facing facts of one person, through the field map."""
    spec = {**DEFAULT_FIELDS, **(fields or {})}
    attrs = profile.attributes
    events = profile.events[:SUMMARY_EVENTS]
    return PersonFacts(
        source=profile.source,
        profile_id=profile.profile_id,
        name=_as_text(resolve_field(attrs, spec["name"])),
        email=_as_text(resolve_field(attrs, spec["email"])),
        loyalty_tier=_as_text(resolve_field(attrs, spec["loyalty_tier"])),
        lifetime_value=_as_score(resolve_field(attrs, spec["lifetime_value"]), "lifetime_value"),
        churn_propensity=_as_score(resolve_field(attrs, spec["churn_propensity"]),
                                   "churn_propensity"),
        audiences=tuple(
            SummaryAudience(id=a.id, name=a.name, status=a.status) for a in profile.audiences
        ),
        recent_events=tuple(
            SummaryEvent(timestamp=e.timestamp, type=e.type, title=event_title(e)) for e in events
        ),
        last_campaign=_last_campaign(events, spec["last_campaign"]),
    )


def build_summary(
    info: CallInfo,
    identity: Identity | None,
    match: Profile | AmbiguousMatch | None,
    lookup_ms: float | None,
    fields: Mapping[str, str | list[str]] | None = None,
) -> Summary:
    """The summary of one call; ``match`` None gives ``found: false``.

    A shared number gives ``found: true`` with the people it touches under
    ``ambiguous``, and no person chosen for the agent.
    """
    base = {"call": info, "identity": identity, "lookup_ms": lookup_ms}
    if match is None:
        return Summary(found=False, **base)
    if isinstance(match, AmbiguousMatch):
        candidates = tuple(person_facts(p, fields) for p in match.candidates)
        ambiguity = Ambiguity(count=match.count, candidates=candidates)
        return Summary(found=True, source=match.source, ambiguous=ambiguity, **base)
    return Summary(found=True, **base, **dict(person_facts(match, fields)))
