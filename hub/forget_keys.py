"""What identifies a forgotten person in the hub's own state, and how it is taken out.

A person is known by keys: ``number:+14155550134``, ``email:ada@example.com``,
``identity:<any other identity value>`` and ``profile:<profile id>``; a call by
``call:<CallSid>``. The keys come from the profiles the store removed (all their
identities and the email in their attributes), from the identity ``cahub forget`` was
given (a number nobody in the store holds may still have called), and from the call
summaries those keys find (a remote provider's profile id or email). Names are reported
but never searched for: another customer may share one.

A summary that is the person's (their number called, or the profile matched is theirs)
is stripped to what says nothing of them: the CallSid, the number called and the kind
of caller. A shared number's summary that lists the person among its candidates loses
that candidate. Server processes match keys as keyed digests (``digest``), so the
durable record of a forget does not hold the person's numbers or emails either.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Iterable, Mapping

from hub.desk import ConsoleEvent
from hub.models import CallInfo, Frozen, PersonFacts, Profile, Summary
from hub.summary import person_facts
from lookup.phone import PHONE_NAMESPACES, to_e164

E164 = re.compile(r"\+[1-9][0-9]{5,14}")
DIGEST_CHARS = 32  # 128 bits of HMAC-SHA256

Contains = Callable[[str], bool]


def value_key(value: str) -> str:
    """The key of an identity value: a number, an email, or any other identity."""
    text = value.strip()
    if E164.fullmatch(text):
        return f"number:{text}"
    if "@" in text:
        return f"email:{text.lower()}"
    return f"identity:{text}"


def given_key(value: str, namespace: str | None, region: str) -> str:
    """The key of the identity ``cahub forget`` was given: a number in any spelling (read
    in ``region``) is the E.164 one calls come from."""
    phone = namespace is None or namespace in PHONE_NAMESPACES
    number = to_e164(value, region) if phone and "@" not in value else None
    return value_key(number or value)


def call_key(call_sid: str) -> str:
    return f"call:{call_sid}"


def digest(secret: bytes, key: str) -> str:
    """A keyed digest of ``key``: equal keys match, the key cannot be read back."""
    return hmac.new(secret, key.encode(), hashlib.sha256).hexdigest()[:DIGEST_CHARS]


class PersonKeys(Frozen):
    """The keys of one forgotten person (or of every person a shared number touched)."""

    keys: frozenset[str] = frozenset()
    names: frozenset[str] = frozenset()

    @classmethod
    def of(cls, given: str, profiles: Iterable[Profile],
           fields: Mapping[str, str | list[str]] | None = None) -> PersonKeys:
        """The keys of ``profiles`` and the ``given`` key (``given_key``) they were found by."""
        keys, names = {given}, set()
        for profile in profiles:
            facts = person_facts(profile, fields)
            keys |= {value_key(i.id) for i in profile.identities}
            keys |= _facts_keys(facts)
            names |= {facts.name} if facts.name else set()
        return cls(keys=frozenset(keys), names=frozenset(names))

    def contains(self, key: str) -> bool:
        return key in self.keys

    def needles(self) -> frozenset[str]:
        """The values to look for in stored text (the part of each key after its kind)."""
        return frozenset(key.split(":", 1)[1] for key in self.keys)

    def widened(self, summaries: Iterable[Summary]) -> PersonKeys:
        """These keys plus what the person's own summaries say of them (a profile id or
        an email known only to a remote provider)."""
        found = set(self.keys)
        names = set(self.names)
        for summary in summaries:
            if concerns(summary, self.contains):
                found |= _facts_keys(summary)
                names |= {summary.name} if summary.name else set()
        return PersonKeys(keys=frozenset(found), names=frozenset(names))

    def digests(self, secret: bytes) -> frozenset[str]:
        return frozenset(digest(secret, key) for key in self.keys)


def summary_keys(summary: Summary) -> frozenset[str]:
    """The keys that make ``summary`` the person's own: caller, matched identity, profile."""
    keys = set(_facts_keys(summary))
    if summary.call.from_:
        keys.add(value_key(summary.call.from_))
    if summary.identity is not None:
        keys.add(value_key(summary.identity.id))
    return frozenset(keys)


def concerns(summary: Summary, contains: Contains) -> bool:
    """Whether ``summary`` says anything of the person whose keys ``contains`` holds."""
    return _own(summary, contains) or any(
        _listed(candidate, contains) for candidate in _candidates(summary))


def event_concerns(event: ConsoleEvent, contains: Contains) -> bool:
    """Whether a console event is the person's: a pop that ``concerns`` them, or a pop or a
    call state of one of their calls (a call state carries no more than its CallSid to tell
    whose it is, and the agents' notes)."""
    sid = event.call.sid if isinstance(event, Summary) else event.call_sid
    if sid and contains(call_key(sid)):
        return True
    return isinstance(event, Summary) and concerns(event, contains)


def redact(summary: Summary, contains: Contains) -> Summary:
    """``summary`` without the person: stripped when it is theirs, else without their
    candidacy on a shared number; unchanged when it does not concern them."""
    if _own(summary, contains):
        return stripped(summary)
    if summary.ambiguous is None:
        return summary
    kept = tuple(c for c in summary.ambiguous.candidates if not _listed(c, contains))
    if len(kept) == len(summary.ambiguous.candidates):
        return summary
    count = summary.ambiguous.count
    left = count - (len(summary.ambiguous.candidates) - len(kept)) if count else count
    return summary.model_copy(update={"ambiguous": summary.ambiguous.model_copy(
        update={"candidates": kept, "count": left})})


def stripped(summary: Summary) -> Summary:
    """What is kept of a forgotten caller's call: its sid, the number called, the kind."""
    call = CallInfo(sid=summary.call.sid, **{"from": None}, to=summary.call.to,
                    caller_kind=summary.call.caller_kind)
    return Summary(call=call, identity=None, found=False)


def _own(summary: Summary, contains: Contains) -> bool:
    return any(contains(key) for key in summary_keys(summary))


def _listed(candidate: PersonFacts, contains: Contains) -> bool:
    return any(contains(key) for key in _facts_keys(candidate))


def _candidates(summary: Summary) -> tuple[PersonFacts, ...]:
    return summary.ambiguous.candidates if summary.ambiguous is not None else ()


def _facts_keys(facts: PersonFacts) -> set[str]:
    keys = {f"profile:{facts.profile_id}"} if facts.profile_id else set()
    return keys | ({value_key(facts.email)} if facts.email else set())
