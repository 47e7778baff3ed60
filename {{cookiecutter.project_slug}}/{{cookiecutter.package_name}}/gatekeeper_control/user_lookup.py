"""Who an admin means: the app's users as gatekeeper names them, through the `user_lookup` and
`users_lookup` hooks the app gave the store (`gatekeeper_control.init_app`). One user for a change (an
override, a segment's or a group's member), several for the users page's search or a pasted list.

Without a `user_lookup`, a text is taken as the user's id, unchecked. A database error of the hook is the
store's outage (`StoreUnavailableError`), so nothing is half-written.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flask import current_app

from .checks import one_user, storable, users_found
from .errors import StoreUnavailableError, UnknownUserError
from .snapshot import DATABASE_ERRORS, EXTENSION_KEY, AppStore, UserRef, describe_error
from .tables import LABEL_LENGTH


def find_user(text: str) -> UserRef | None:
    """The user an admin means by `text` (email or id), through the app's `user_lookup`; a text that is
    only part of some users' emails or names raises UnknownUserError (a change needs one user)."""
    text = (text or "").strip()
    return one_user(text, _lookup(text)) if storable(text, LABEL_LENGTH) else None


def search_users(text: str) -> list[UserRef]:
    """The users `text` names: the one it names exactly, else those whose email or name it is part of,
    when the app's `user_lookup` answers partial texts (the users page)."""
    text = (text or "").strip()
    return users_found(_lookup(text)) if storable(text, LABEL_LENGTH) else []


def find_users(texts: Sequence[str]) -> dict[str, UserRef]:
    """The users `texts` name, {text: UserRef} (texts that name nobody are left out): through the app's
    `users_lookup` in one call when it gave one, else one `find_user` each."""
    texts = [
        text for text in dict.fromkeys((text or "").strip() for text in texts) if storable(text, LABEL_LENGTH)
    ]
    state = _state()
    if state.users_lookup is None or state.user_lookup is None:
        return {text: ref for text in texts if (ref := _one_or_none(text)) is not None}
    try:
        return dict(state.users_lookup(texts))
    except DATABASE_ERRORS as exc:
        raise StoreUnavailableError(
            f"Could not look up {len(texts)} users: {describe_error(exc)}. Nothing was changed."
        ) from exc


def _state() -> AppStore:
    return current_app.extensions[EXTENSION_KEY]


def _lookup(text: str) -> Any:
    lookup = _state().user_lookup
    if lookup is None:
        return UserRef(id=text, label=text)
    try:
        return lookup(text)
    except DATABASE_ERRORS as exc:
        raise StoreUnavailableError(
            f"Could not look up {text!r}: {describe_error(exc)}. Nothing was changed."
        ) from exc


def _one_or_none(text: str) -> UserRef | None:
    try:
        return find_user(text)
    except UnknownUserError:  # part of several users' emails: in a pasted list, one that names nobody
        return None
