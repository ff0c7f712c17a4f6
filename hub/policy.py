"""Data-usage labels and channel policies: what each rendering of a summary may carry.

Fields of the summary carry labels from Adobe's DULE families (C contract, I identity,
S sensitive, plus custom ones); each channel (screen pop, CRM note, SMS, webhook)
denies some labels, and every rendering is filtered through its channel's policy
first. By default an SMS to the rep carries the name and key facts but no contact
identifiers (email, numbers, account ids) and nothing sensitive.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hub.models import Summary

Channel = Literal["pop", "note", "sms", "webhook"]
LABELLED_FIELDS = frozenset({
    "name", "email", "loyalty_tier", "lifetime_value", "churn_propensity", "audiences",
    "recent_events", "last_campaign", "profile_id", "identity", "call.from", "call.to",
})
LIST_FIELDS = frozenset({"audiences", "recent_events"})
CALL_FIELDS = {"call.from": "from_", "call.to": "to"}
DEFAULT_LABELS: dict[str, tuple[str, ...]] = {
    "email": ("I1",), "call.from": ("I1",), "identity": ("I1",), "profile_id": ("I2",),
}
SENSITIVE = ("S1", "S2", "PSPD", "RHD")
DEFAULT_DENY: dict[str, tuple[str, ...]] = {
    "pop": (), "note": ("C12",), "webhook": ("C12",),
    "sms": ("I1", "I2", *SENSITIVE, "C2", "C12"),
}


class ChannelPolicy(BaseModel):
    """The labels a channel may not carry."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    deny: tuple[str, ...] = ()


class DataUsage(BaseModel):
    """Field labels (TOML ``[labels]``) and channel policies (TOML ``[policies.<channel>]``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    labels: dict[str, tuple[str, ...]] = Field(default_factory=lambda: dict(DEFAULT_LABELS))
    policies: dict[Channel, ChannelPolicy] = Field(default_factory=dict)

    @field_validator("labels")
    @classmethod
    def _known_fields(cls, labels: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        unknown = sorted(set(labels) - LABELLED_FIELDS)
        if unknown:
            raise ValueError(f"labels for unknown summary fields {unknown}; "
                             f"label any of {sorted(LABELLED_FIELDS)}")
        return {**DEFAULT_LABELS, **labels}

    def denied(self, channel: Channel) -> frozenset[str]:
        """The summary fields ``channel`` may not carry."""
        policy = self.policies.get(channel, ChannelPolicy(deny=DEFAULT_DENY[channel]))
        deny = set(policy.deny)
        return frozenset(f for f, labels in self.labels.items() if deny.intersection(labels))

    def filter(self, summary: Summary, channel: Channel) -> Summary:
        """``summary`` with every field ``channel`` may not carry emptied."""
        denied = self.denied(channel)
        if not denied:
            return summary
        update = _emptied(denied - CALL_FIELDS.keys())
        call_update = {CALL_FIELDS[f]: None for f in denied & CALL_FIELDS.keys()}
        update["call"] = summary.call.model_copy(update=call_update)
        if summary.ambiguous is not None:
            people = tuple(c.model_copy(update=_emptied(denied - CALL_FIELDS.keys()))
                           for c in summary.ambiguous.candidates)
            update["ambiguous"] = summary.ambiguous.model_copy(update={"candidates": people})
        return summary.model_copy(update=update)


def _emptied(fields: frozenset[str]) -> dict[str, Any]:
    return {field: () if field in LIST_FIELDS else None for field in fields}
