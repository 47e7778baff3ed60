"""What an admin names, checked before anything is written: a flag and variant the code has, the one user a
text names, text a column can hold, and quoting it back in a message; and which stored overrides the code no
longer understands."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from flask import current_app

from .engine import gatekeeper
from .errors import UnknownFlagError, UnknownUserError, UnknownVariantError
from .snapshot import Snapshot, StaleOverride, UserRef


def current_config_map() -> Mapping[str, Any]:
    return gatekeeper.get_state(current_app).config_map


def check_flag(flag: str) -> Any:
    config_map = current_config_map()
    config = config_map.get(flag)
    if config is None:
        close = difflib.get_close_matches(flag, list(config_map), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else " Run `flask gk list` to see the flags."
        raise UnknownFlagError(f"Unknown flag {quote(flag)}.{hint}")
    return config


def check_variant(config: Any, flag: str, variant: str) -> None:
    variants = config.get_variants()
    if variant not in variants:
        raise UnknownVariantError(
            f"{flag} has no variant {quote(variant)}: use one of {', '.join(variants)}."
        )


def users_found(found: Any) -> list[UserRef]:
    """What an app's `user_lookup` answered, as a list: the one user a text names exactly (a UserRef), the
    users a partial text matches (a list or tuple of them), or nobody (None, or an empty list)."""
    if found is None:
        return []
    return list(found) if isinstance(found, list | tuple) else [found]


def one_user(text: str, found: Any) -> UserRef | None:
    """The user `text` names for a change: the one the lookup answered, or among the users it partly matches
    the one whose id or label is `text` (in any case). None for nobody; UnknownUserError when the text only
    matches part of some users' emails or names: a change needs the whole of one."""
    if found is None or not isinstance(found, list | tuple):
        return found
    exact = [ref for ref in found if str(ref.id) == text or str(ref.label).lower() == text.lower()]
    if len(exact) == 1:
        return exact[0]
    if not found:
        return None
    shown = ", ".join(shorten(str(ref.label), 60) for ref in found[:5]) + (", ..." if len(found) > 5 else "")
    raise UnknownUserError(
        f"{quote(text)} is part of {len(found)} user{'s' if len(found) != 1 else ''}' email or name "
        f"({shown}): type one in full, or an id."
    )


def storable(text: str, limit: int) -> bool:
    """Whether `text` could be in a column: short enough, and no NUL (which PostgreSQL refuses outright)."""
    return 0 < len(text) <= limit and "\x00" not in text


def shorten(text: str, limit: int = 60) -> str:
    """User input cut short for a message, so a pasted novel cannot overflow the session cookie."""
    return text if len(text) <= limit else text[:limit] + "..."


def quote(text: str) -> str:
    return repr(shorten(text))


def unchecked_user_note(user_text: str) -> str:
    """What to say after storing an override for `user_text` in an app that gave no `user_lookup`."""
    return (
        f"The id {quote(user_text.strip())} was not checked: this app gives the store no user_lookup, "
        "so any text is taken as an id."
    )


def find_stale(snapshot: Snapshot, config_map: Mapping[str, Any]) -> list[StaleOverride]:
    variants = {flag: config.get_variants() for flag, config in config_map.items()}

    def reason(flag: str, variant: str) -> str | None:
        if flag not in variants:
            return f"flag {flag} is no longer in the code"
        if variant not in variants[flag]:
            return f"variant {variant} is no longer one of {', '.join(variants[flag])}"
        return None

    stale = []
    for flag, variant in sorted(snapshot.forced.items()):
        if why := reason(flag, variant):
            stale.append(StaleOverride(flag, variant, None, why))
    for flag, users in sorted(snapshot.user_overrides.items()):
        for user_id, variant in sorted(users.items()):
            if why := reason(flag, variant):
                stale.append(StaleOverride(flag, variant, user_id, why))
    return stale
