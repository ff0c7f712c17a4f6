"""Rule audiences: ``[[audiences]]`` of the settings, evaluated over a merged profile.

A rule is data, never code: conditions on dotted paths of the merged attributes
(``_computed.<name>`` included), all of which (``all``) and one of which (``any``) must
hold. A path that is absent or null is *missing*: only ``missing`` holds for it. Values
of different kinds (a number and a string, a boolean and a number) never compare, so a
condition on them is false, ``!=`` and ``not_in`` included; ordering compares numbers
with numbers and strings with strings (ISO-8601 dates order correctly as strings).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, Self

from pydantic import ConfigDict, Field, model_validator

from hub.models import AudienceMembership, Frozen
from hub.summary import resolve_path

Op = Literal["==", "!=", ">", ">=", "<", "<=", "in", "not_in", "exists", "missing", "contains"]
Scalar = bool | int | float | str
PATH_PATTERN = r"^[^.\s]+(\.[^.\s]+)*$"
ORDERINGS: dict[str, Callable[[Any, Any], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}
MISSING = object()  # what resolve() finds at a path that is absent or null


class Condition(Frozen):
    """One test of one attribute: ``{ path = "loyalty.tier", op = "in", value = [...] }``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str = Field(pattern=PATH_PATTERN)
    op: Op
    value: Scalar | list[Scalar] | None = None

    @model_validator(mode="after")
    def _value_fits_op(self) -> Self:
        problem = _value_problem(self.op, self.value)
        if problem is not None:
            raise ValueError(f"condition on {self.path!r}: {self.op} {problem}")
        return self

    def holds(self, profile: Mapping[str, Any]) -> bool:
        """Whether ``profile`` meets the condition; never raises."""
        actual = resolve(profile, self.path)
        if self.op in ("exists", "missing"):
            return (actual is MISSING) == (self.op == "missing")
        return actual is not MISSING and _test(self.op, actual, self.value)


class AudienceRule(Frozen):
    """An audience whose members are the profiles that meet its conditions."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    all: tuple[Condition, ...] = ()
    any: tuple[Condition, ...] = ()

    @model_validator(mode="after")
    def _has_a_condition(self) -> Self:
        if not (self.all or self.any):
            raise ValueError(f"audience {self.id!r} needs at least one condition in all or any")
        return self

    def matches(self, profile: Mapping[str, Any]) -> bool:
        """Every ``all`` condition holds, and one of ``any`` when there are any."""
        every = all(condition.holds(profile) for condition in self.all)
        return every and (not self.any or any(condition.holds(profile) for condition in self.any))


def evaluate(rules: Sequence[AudienceRule], profile: Mapping[str, Any]) -> list[AudienceMembership]:
    """Memberships (status "realized") of the audiences whose rules ``profile`` meets."""
    return [
        AudienceMembership(id=rule.id, name=rule.name, status="realized")
        for rule in rules
        if rule.matches(profile)
    ]


def resolve(profile: Mapping[str, Any], path: str) -> Any:
    """The value at dotted ``path`` of ``profile``, or ``MISSING``."""
    value = resolve_path(profile, path)
    return MISSING if value is None else value


def _value_problem(op: Op, value: Scalar | list[Scalar] | None) -> str | None:
    """Why ``value`` does not suit ``op``, or None when it does."""
    if op in ("exists", "missing"):
        return None if value is None else "takes no value"
    if op in ("in", "not_in"):
        return None if isinstance(value, list) and value else "needs a non-empty list of values"
    if value is None:
        return "needs a value"
    if isinstance(value, list):
        return "needs a single value, not a list"
    if op in ORDERINGS and _kind(value) not in ("number", "string"):
        return "needs a number or a string"
    return None


def _test(op: Op, actual: Any, expected: Any) -> bool:
    if op in ORDERINGS:
        ordered = _kind(actual) in ("number", "string") and _kind(actual) == _kind(expected)
        return ordered and ORDERINGS[op](actual, expected)
    if op == "contains":
        return _contains(actual, expected)
    if op in ("in", "not_in"):
        found = [_equal(actual, item) for item in expected]
        return True in found if op == "in" else all(same is False for same in found)
    return _equal(actual, expected) is (op == "==")


def _equal(actual: Any, expected: Any) -> bool | None:
    """Whether two values are equal; None when they are of different kinds."""
    kind = _kind(actual)
    return actual == expected if kind is not None and kind == _kind(expected) else None


def _contains(actual: Any, expected: Any) -> bool:
    """A substring of a string, or an item of a list."""
    if isinstance(actual, str):
        return isinstance(expected, str) and expected in actual
    return isinstance(actual, list) and any(_equal(item, expected) for item in actual)


def _kind(value: Any) -> str | None:
    """The JSON kind of a value; booleans are not numbers here."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    kinds = ((str, "string"), (list, "list"), (Mapping, "object"))
    return next((name for cls, name in kinds if isinstance(value, cls)), None)
