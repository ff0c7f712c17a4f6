"""The summary as text for a person: the CLI's ``lookup``, and later notes and SMS."""

from __future__ import annotations

from hub.models import CallerKind, Summary

MEMBER_STATUSES = ("realized", "existing")


def churn_band(propensity: float) -> str:
    if propensity >= 0.7:
        return "high"
    return "medium" if propensity >= 0.4 else "low"


def headline(summary: Summary) -> str:
    """Who is calling, in a few words."""
    customer = summary.call.customer
    number = f" {customer}" if customer else ""
    if summary.call.caller_kind is CallerKind.WITHHELD:
        return "Withheld number"
    if not summary.found:
        return f"Unknown caller{number}"
    if summary.ambiguous is not None:
        people = summary.ambiguous.count or "several"
        return f"Shared number{number}: {people} people"
    return f"{summary.name or 'Customer without a name'}{number}"


def facts(summary: Summary) -> list[str]:
    """The key facts, one short line each, skipping what is unknown."""
    lines = []
    if summary.loyalty_tier:
        lines.append(f"Loyalty tier: {summary.loyalty_tier}")
    if summary.lifetime_value is not None:
        lines.append(f"Lifetime value: {summary.lifetime_value:,.2f}")
    if summary.churn_propensity is not None:
        band = churn_band(summary.churn_propensity)
        lines.append(f"Churn risk: {summary.churn_propensity:.0%} ({band})")
    members = [a.name or a.id for a in summary.audiences if a.status in MEMBER_STATUSES]
    if members:
        lines.append("Audiences: " + ", ".join(members))
    if summary.last_campaign:
        lines.append(f"Last campaign: {summary.last_campaign}")
    return lines


def summary_text(summary: Summary) -> str:
    """A multi-line rendering for a terminal."""
    lines = [headline(summary)]
    if summary.ambiguous is not None:
        lines += [f"  - {c.name or 'no name'} ({c.profile_id})"
                  for c in summary.ambiguous.candidates]
    if summary.email:
        lines.append(f"Email: {summary.email}")
    lines += facts(summary)
    if summary.recent_events:
        lines.append("Recent activity:")
        lines += [f"  {e.timestamp:%Y-%m-%d %H:%M}  {e.title}" for e in summary.recent_events]
    source = f"{summary.source}, " if summary.source else ""
    if summary.lookup_ms is not None:
        lines.append(f"({source}looked up in {summary.lookup_ms:.2f} ms)")
    return "\n".join(lines)
