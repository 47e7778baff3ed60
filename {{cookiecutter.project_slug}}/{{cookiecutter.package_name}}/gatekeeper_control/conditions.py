"""Conditions on context attributes, the parts of a segment: what each operator means, how a condition is
checked when it is saved, and how a segment's conditions are matched on a flag check.

A condition is (attribute, operator, value), e.g. ("email", "ends_with", "@example.com"). A segment matches a
context when all its conditions hold. Matching never raises: an attribute that is missing, or of a type the
operator cannot compare (a number for `starts_with`, text that is not a version for `semver_gt`), makes the
condition false. Regular expressions run on RE2 (`google-re2`), which cannot backtrack catastrophically, so
no pattern an admin saves can stall a request; a pattern RE2 does not accept is refused on save. Both
`google-re2` and `packaging` (semantic versions) are optional for a folder copied into another app: without
them, the conditions that need them are refused on save, saying which package to install.

Imports no other module of the folder: the snapshot compiles the stored conditions with `compile_segment`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from .errors import OverrideError

try:  # optional in a copied folder: without it, `matches` conditions are refused on save
    import re2
except ImportError:  # pragma: no cover - a dependency of the baked project
    re2 = None
try:  # optional in a copied folder: without it, semantic-version conditions are refused on save
    from packaging.version import InvalidVersion, Version
except ImportError:  # pragma: no cover - a dependency of the baked project
    Version = InvalidVersion = None


class ConditionError(OverrideError):
    """A condition that cannot be saved: unknown operator, or a value the operator cannot use."""


# operator -> (what it says, the value it takes: "any", "list", "text", "pattern", "number", "version",
# "date" or "none")
OPERATORS: dict[str, tuple[str, str]] = {
    "equals": ("equals", "any"),
    "not_equals": ("does not equal", "any"),
    "in": ("is one of", "list"),
    "not_in": ("is none of", "list"),
    "starts_with": ("starts with", "text"),
    "ends_with": ("ends with", "text"),
    "contains": ("contains", "text"),
    "matches": ("matches the regular expression", "pattern"),
    "lt": ("<", "number"),
    "lte": ("<=", "number"),
    "gt": (">", "number"),
    "gte": (">=", "number"),
    "semver_eq": ("is version", "version"),
    "semver_lt": ("is a version before", "version"),
    "semver_gt": ("is a version after", "version"),
    "before": ("is a date before", "date"),
    "after": ("is a date after", "date"),
    "is_set": ("is set", "none"),
    "is_not_set": ("is not set", "none"),
}
_SCALARS = (str, int, float, bool)


@dataclass(frozen=True)
class Condition:
    """One condition, as stored: the value as it was given (JSON-compatible)."""

    attribute: str
    operator: str
    value: Any = None

    def __str__(self) -> str:
        words, kind = OPERATORS.get(self.operator, (self.operator, "any"))
        shown = "" if kind == "none" else " " + json.dumps(self.value, ensure_ascii=False)
        return f"{self.attribute} {words}{shown}"


def condition_from_words(text: str) -> Condition | None:
    """The condition `str(condition)` worded as `text` (the audit log's words), or None when no operator's
    words fit: the longest words are tried first ("is a version before" before "is version")."""
    for operator, (words, kind) in sorted(OPERATORS.items(), key=lambda item: -len(item[1][0])):
        if kind == "none":
            if text.endswith(f" {words}") and len(text) > len(words) + 1:
                return Condition(text[: -len(words) - 1], operator)
            continue
        attribute, marker, shown = text.partition(f" {words} ")
        if not marker or not attribute:
            continue
        try:
            return Condition(attribute, operator, json.loads(shown))
        except ValueError:
            continue
    return None


def parse_condition_value(operator: str, text: str | None) -> Any:
    """The value of a condition as typed (CLI, dashboard): JSON when it parses, else the text itself; a
    comma-separated list for `in` / `not_in` when it is not a JSON list."""
    if text is None or text == "":
        return None
    try:
        value = json.loads(text)
    except ValueError:
        value = text
    if OPERATORS.get(operator, ("", ""))[1] == "list" and not isinstance(value, list):
        value = [part.strip() for part in str(text).split(",") if part.strip()]
    if OPERATORS.get(operator, ("", ""))[1] in ("text", "pattern", "version", "date") and not isinstance(
        value, str
    ):
        value = text
    return value


def check_condition(condition: Condition) -> Condition:
    """The condition if it can be saved; else ConditionError saying what is wrong with it."""
    attribute, operator, value = condition.attribute, condition.operator, condition.value
    if not isinstance(attribute, str) or not attribute.strip() or len(attribute) > 100:
        raise ConditionError("Name the attribute the condition reads, e.g. email (up to 100 characters).")
    if operator not in OPERATORS:
        raise ConditionError(f"{operator!r} is not an operator: use one of {', '.join(OPERATORS)}.")
    kind = OPERATORS[operator][1]
    where = f"{attribute} {operator}"
    if kind == "none":
        if value is not None:
            raise ConditionError(f"{where} takes no value.")
        return Condition(attribute.strip(), operator)
    if value is None:
        raise ConditionError(f"{where} needs a value.")
    if kind == "any" and not isinstance(value, _SCALARS):
        raise ConditionError(f"{where}: compare with text, a number or true/false, not {value!r}.")
    if kind == "list" and not (
        isinstance(value, list) and value and all(isinstance(item, _SCALARS) for item in value)
    ):
        raise ConditionError(f'{where}: give a list, e.g. ["pro", "team"] or pro,team.')
    if kind in ("text", "pattern") and not (isinstance(value, str) and value):
        raise ConditionError(f"{where}: give some text.")
    if kind == "pattern" and re2 is None:
        raise ConditionError(f"{where}: patterns need the google-re2 package (pip install google-re2).")
    if kind == "version" and Version is None:
        raise ConditionError(f"{where}: versions need the packaging package (pip install packaging).")
    if kind == "pattern":
        try:
            re2.compile(value)
        except re2.error as error:
            message = error.args[0].decode() if error.args and isinstance(error.args[0], bytes) else error
            raise ConditionError(f"{where}: {value!r} is not a pattern RE2 accepts ({message}).") from None
    if kind == "number" and (type(value) not in (int, float)):
        raise ConditionError(f"{where}: give a number, not {value!r}.")
    if kind == "version" and _version(value) is None:
        raise ConditionError(f"{where}: {value!r} is not a version like 2.1.0.")
    if kind == "date" and _moment(value) is None:
        raise ConditionError(f"{where}: {value!r} is not a date like 2027-01-31 (or 2027-01-31T09:00Z).")
    return Condition(attribute.strip(), operator, value)


class CompiledSegment:
    """A segment's conditions, ready to match a context (see the module docstring): `matches(context)`."""

    __slots__ = ("conditions", "description", "name", "tests")

    def __init__(self, name: str, conditions: tuple[Condition, ...], description: str = "") -> None:
        self.name, self.conditions, self.description = name, conditions, description
        self.tests = tuple((c.attribute, _test(c)) for c in conditions)

    def matches(self, context: Mapping[str, Any]) -> bool:
        """Whether every condition holds for `context` (a segment without conditions matches nobody)."""
        if not self.tests:
            return False
        get = context.get
        for attribute, test in self.tests:
            try:
                if not test(get(attribute)):
                    return False
            except Exception:  # a mistyped attribute: the condition is false
                return False
        return True

    def failing(self, context: Mapping[str, Any]) -> list[Condition]:
        """The conditions `context` does not meet (for the dashboard's "does this user match?")."""
        return [
            c
            for c, (_, test) in zip(self.conditions, self.tests, strict=True)
            if not _holds(test, context, c)
        ]


def compile_segment(name: str, conditions: list[Condition], description: str = "") -> CompiledSegment:
    return CompiledSegment(name, tuple(conditions), description)


def _holds(test: Callable[[Any], bool], context: Mapping[str, Any], condition: Condition) -> bool:
    try:
        return bool(test(context.get(condition.attribute)))
    except Exception:
        return False


def _test(condition: Condition) -> Callable[[Any], bool]:
    """The predicate on an attribute's value (None: missing) that `condition` stands for."""
    operator, value = condition.operator, condition.value
    if operator == "is_set":
        return lambda seen: seen is not None
    if operator == "is_not_set":
        return lambda seen: seen is None
    if operator == "equals":
        return lambda seen: seen is not None and _same(seen, value)
    if operator == "not_equals":
        return lambda seen: seen is not None and not _same(seen, value)
    if operator in ("in", "not_in"):
        wanted = operator == "in"
        return lambda seen: seen is not None and any(_same(seen, item) for item in value) is wanted
    if operator == "starts_with":
        return lambda seen: type(seen) is str and seen.startswith(value)
    if operator == "ends_with":
        return lambda seen: type(seen) is str and seen.endswith(value)
    if operator == "contains":
        return lambda seen: type(seen) is str and value in seen
    if operator == "matches":
        if re2 is None:  # stored where google-re2 was installed: matches nobody here
            return lambda seen: False
        pattern = re2.compile(value)
        return lambda seen: type(seen) is str and pattern.search(seen) is not None
    if operator in ("lt", "lte", "gt", "gte"):
        compare = _COMPARE[operator]
        return lambda seen: type(seen) in (int, float) and compare(seen, value)
    if operator.startswith("semver_"):
        version, compare = _version(value), _COMPARE[{"eq": "eq", "lt": "lt", "gt": "gt"}[operator[7:]]]
        return lambda seen: (found := _version(seen)) is not None and compare(found, version)
    moment, compare = _moment(value), _COMPARE["lt" if operator == "before" else "gt"]
    return lambda seen: (found := _moment(seen)) is not None and compare(found, moment)


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
    "eq": lambda a, b: a == b,
}


def _same(seen: Any, value: Any) -> bool:
    """Equal, and of the same kind: True is not 1, and "1" is not 1."""
    return (type(seen) is type(value) and seen == value) or (
        type(seen) in (int, float) and type(value) in (int, float) and seen == value
    )


def _version(text: Any) -> Any:
    """`text` as a packaging Version, or None when it is not one (or packaging is not installed)."""
    if type(text) is not str or Version is None:
        return None
    try:
        return Version(text)
    except InvalidVersion:
        return None


def _moment(value: Any) -> datetime | None:
    """A date or time (ISO 8601 text, a date or a datetime) as an aware UTC datetime; None if it is none."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    elif type(value) is str:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return None
    else:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
