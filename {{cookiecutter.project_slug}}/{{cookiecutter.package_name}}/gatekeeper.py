"""Gatekeeper: the feature-flag engine.

A drop-in module: it imports only the standard library, Flask and its own dependencies (itsdangerous,
blinker, click) and, when it is installed, Flask-Login. Nothing from the app it serves.

Evaluation order for a flag (the first that applies wins, and the result records why):

1. ``browser_override``: the signed ``gatekeeper`` cookie, honoured only for users allowed to override;
2. ``forced``: a variant forced for everyone (the store's kill switch; ``forced_variant`` in tests, which
   comes first of all, so that a test's choice holds whatever cookie or store it meets);
3. ``user_override``: a per-user override from the store, then ``overrides`` given in code;
4. ``rule``: the config's ``_get_variant``;
5. ``default``: ``DEFAULT_VARIANT``, when the rule raises or returns something that is not a variant.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
import secrets
import struct
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import date
from enum import Enum
from types import MappingProxyType
from typing import Any, NamedTuple, TypeVar

import click
from blinker import Namespace
from flask import Flask, Request, Response, abort, after_this_request, current_app, has_request_context
from flask import request as flask_request
from flask import session as flask_session
from flask.cli import AppGroup, with_appcontext
from itsdangerous import BadSignature, URLSafeSerializer
from werkzeug.local import LocalProxy

try:  # optional: without it, pass init_app a user_loader
    from flask_login import current_user as _login_current_user
except ImportError:
    _login_current_user = None

log = logging.getLogger(__name__)

BROWSER_OVERRIDE = "browser_override"
FORCED = "forced"
USER_OVERRIDE = "user_override"
RULE = "rule"
DEFAULT = "default"

OVERRIDE_COOKIE = "gatekeeper"
OVERRIDE_COOKIE_MAX_AGE = 30 * 24 * 3600
OVERRIDE_COOKIE_MAX_LENGTH = 4096
ANONYMOUS_COOKIE = "gk_anon"
ANONYMOUS_COOKIE_MAX_AGE = 2 * 365 * 24 * 3600
ROLLOUT_BUCKETS = 10_000

_SIGNER_SALT = "gatekeeper-browser-overrides"
_ANONYMOUS_ID = re.compile(r"[0-9a-f]{32}")
_MISSING: Any = object()
_first_8_bytes = struct.Struct(">Q").unpack_from
_EVALUATION: Any = object()  # the key of the Evaluation in a flag's answer table (never a variant name)

flag_evaluated = Namespace().signal(
    "flag-evaluated",
    doc="Sent once per flag per request with flag, variant, reason and user_id: log exposures here.",
)


class FlagConfigError(ValueError):
    """A flag config is wrong; the message names the flag and the fix."""


class UnknownFlagError(LookupError):
    """`ff()` named a flag or variant that no config declares (raised in debug and testing only)."""


class Evaluation(NamedTuple):
    """The variant a flag gave, and why."""

    flag: str
    variant: str
    reason: str
    detail: str = ""


def rollout_bucket(key: str) -> int:
    """The rollout bucket, 0 to 9999, of a key such as ``"FLAG:SALT:UNIT"``: stable across processes.

    The first 8 bytes of the SHA-256 of the key's UTF-8 bytes, read as a big-endian unsigned integer,
    modulo 10,000: the same on every machine and Python version, and independent between flags.
    """
    return _first_8_bytes(hashlib.sha256(key.encode()).digest())[0] % ROLLOUT_BUCKETS


class FeatureFlagConfig(ABC):
    """One flag: its variants and the rule that picks one. Subclass it once per flag.

    ``FLAG_NAME``, ``VARIANTS_ENUM_STR`` (space-separated names) and ``DESCRIPTION`` describe the flag;
    ``DEFAULT_VARIANT`` is what users get when the rule fails (the last variant if not set);
    ``overrides={'VISIBLE': [1, 2, 3]}`` pins users to variants in code.
    ``OWNER`` (who to ask) and ``EXPIRES`` (``"2027-03-01"``, the date the flag should be gone by) are
    optional; ``flask gk list``, ``flask gk check`` and the dashboard show them.
    """

    FLAG_NAME: str
    VARIANTS_ENUM_STR: str
    DESCRIPTION: str = ""
    DEFAULT_VARIANT: str | None = None
    ROLLOUT_SALT: str = ""
    OWNER: str = ""
    EXPIRES: str | date | None = None

    def __init__(self, overrides: Mapping[str, Any] | None = None) -> None:
        names = self.VARIANTS_ENUM_STR.split() if isinstance(self.VARIANTS_ENUM_STR, str) else []
        self._check_variant_names(names)
        self.variants_enum = Enum(f"{type(self).__name__}Variants", names)
        self.overrides = overrides
        self._names = frozenset(names)
        self._members = {name: self.variants_enum[name] for name in names}
        self.default_variant = self.DEFAULT_VARIANT if self.DEFAULT_VARIANT is not None else names[-1]
        self.expires = self._check_owner_and_expiry()
        self._code_overrides = self._index_overrides(overrides or {})
        self._rollout_prefix = f"{self._flag_name()}:{self.ROLLOUT_SALT}:"
        # Per variant, the answer to `ff(flag, v)` for every v and the evaluation "the rule says so": the
        # common first evaluation picks one of these prebuilt tables, so it allocates nothing per request.
        self._rule_answers = {
            name: {
                **{other: other == name for other in names},
                _EVALUATION: Evaluation(self._flag_name(), name, RULE),
            }
            for name in names
        }

    # -- the rule ---------------------------------------------------------------------------------

    @abstractmethod
    def _get_variant(
        self,
        user_id: Any = None,
        app: Flask | None = None,
        request: Request | None = None,
        session: Any = None,
    ) -> Any:
        """Return one of ``self.variants_enum`` (or its name) for this user."""

    def rollout(self, unit_id: Any, weights: Mapping[str, float]) -> Enum:
        """Pick a variant by weight (percentages summing to 100), sticky for ``unit_id``.

        The unit's bucket is ``rollout_bucket(f"{FLAG_NAME}:{ROLLOUT_SALT}:{unit_id}")``, 0 to 9999; variants
        own consecutive ranges of buckets in the order given, the first from 0. Raising a variant's weight
        keeps everyone who had it, as long as the variants before it keep theirs. A ``unit_id`` of None means
        the visitor's anonymous id (a long-lived cookie) inside a request.
        """
        if unit_id is None:
            unit_id = anonymous_id()
        key = f"{self._rollout_prefix}{unit_id}".encode()  # rollout_bucket(key), inlined for speed
        point = _first_8_bytes(hashlib.sha256(key).digest())[0] % ROLLOUT_BUCKETS / (ROLLOUT_BUCKETS // 100)
        total, chosen = 0, None
        for variant, weight in weights.items():
            total += weight
            if chosen is None and point < total:
                chosen = variant
        if total != 100 and abs(total - 100) > 1e-9:
            raise ValueError(f"{self._flag_name()}: rollout weights add up to {total}, not 100")
        # With float weights a rounding can leave the top bucket over: the last variant owns it.
        return self._members[chosen if chosen is not None else variant]

    # -- the seed's API, kept ---------------------------------------------------------------------

    def get_variants(self) -> list[str]:
        return list(self._members)

    def get_variant(
        self,
        user_id: Any = None,
        app: Flask | None = None,
        request: Request | None = None,
        session: Any = None,
    ) -> Enum:
        """The variant for one user, from browser override, code overrides and the rule (no store)."""
        override = self.get_override_variant(user_id=user_id, app=app, request=request, session=session)
        if override is not None:
            return override
        name = self._variant_name(
            self._get_variant(user_id=user_id, app=app, request=request, session=session)
        )
        return self._members[name if name is not None else self.default_variant]

    def get_override_variant(
        self,
        user_id: Any = None,
        app: Flask | None = None,
        request: Request | None = None,
        session: Any = None,
    ) -> Enum | None:
        if request is not None:
            browser = self.get_browser_override_variant(request)
            if browser is not None:
                return browser
        name = self._code_overrides.get(str(user_id)) if user_id is not None else None
        return self._members[name] if name is not None else None

    def get_browser_override_variants(self, request: Request) -> dict[str, str]:
        return read_browser_overrides(request)

    def get_browser_override_variant(self, request: Request) -> Enum | None:
        name = read_browser_overrides(request).get(self._flag_name())
        return self._members[name] if name is not None else None

    def set_browser_override_variant(
        self, request: Request, variant: str | None, response: Response | None = None
    ) -> Response:
        """Set (or, for '' or None, clear) this flag's browser override on `response` (default: a new,
        empty one), keeping the cookie's other flags; returns the response."""
        overrides = read_browser_overrides(request, check_permission=False)
        if variant:
            if variant not in self._names:
                raise UnknownFlagError(f"{self._flag_name()}: no variant {variant!r}")
            overrides[self._flag_name()] = variant
        else:
            overrides.pop(self._flag_name(), None)
        if response is None:
            response = current_app.make_response("")
        return write_browser_overrides(response, overrides)

    # -- helpers ----------------------------------------------------------------------------------

    def _answers(self, evaluation: Evaluation) -> dict[Any, Any]:
        """What a Gatekeeper remembers for this flag: ``ff()``'s answer per variant, and the evaluation."""
        return {**self._rule_answers[evaluation.variant], _EVALUATION: evaluation}

    def _flag_name(self) -> str:
        return getattr(self, "FLAG_NAME", type(self).__name__)

    def _variant_name(self, result: Any) -> str | None:
        """The variant name a rule's result stands for, or None when it is not one of ours."""
        if type(result) is self.variants_enum:
            return result._name_
        if isinstance(result, str) and result in self._names:
            return result
        return None

    def _check_variant_names(self, names: list[str]) -> None:
        flag = self._flag_name()
        if not names:
            raise FlagConfigError(f"{flag}: VARIANTS_ENUM_STR must list variant names, e.g. 'ON OFF'")
        bad = [name for name in names if not name.isidentifier() or name.startswith("_")]
        if bad:
            raise FlagConfigError(
                f"{flag}: variant names must be identifiers like ON or VARIANT_A, not {bad}"
            )
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise FlagConfigError(
                f"{flag}: variant {', '.join(duplicates)} is listed twice in VARIANTS_ENUM_STR"
            )

    def is_expired(self, today: date | None = None) -> bool:
        """Whether the flag is past its EXPIRES date (never, without one)."""
        return self.expires is not None and self.expires < (today or date.today())

    def _check_owner_and_expiry(self) -> date | None:
        """Validate OWNER and EXPIRES; the expiry as a date (None without one)."""
        flag, expires = self._flag_name(), self.EXPIRES
        if not isinstance(self.OWNER, str):
            raise FlagConfigError(f"{flag}: OWNER must be a string like 'team-checkout', not {self.OWNER!r}")
        if expires is None or type(expires) is date:  # a datetime is not a date here: no time of day
            return expires
        if isinstance(expires, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", expires):
            try:
                return date.fromisoformat(expires)
            except ValueError:
                pass
        raise FlagConfigError(
            f"{flag}: EXPIRES {expires!r} is not a date; write it as YYYY-MM-DD, e.g. EXPIRES = '2027-03-01'"
        )

    def _index_overrides(self, overrides: Mapping[str, Any]) -> dict[str, str]:
        flag, index = self._flag_name(), {}
        for variant, user_ids in overrides.items():
            if variant not in self._names:
                raise FlagConfigError(
                    f"{flag}: overrides name variant {variant!r}; use one of {', '.join(self._members)}"
                )
            if isinstance(user_ids, str | bytes) or not hasattr(user_ids, "__iter__"):
                raise FlagConfigError(f"{flag}: overrides[{variant!r}] must be a list of user ids")
            for user_id in user_ids:
                key = str(user_id)
                if index.get(key, variant) != variant:
                    raise FlagConfigError(f"{flag}: user {user_id!r} is in overrides for two variants")
                index[key] = variant
        return index


FFConfigMap = dict[str, FeatureFlagConfig]


def validate_config_map(config_map: Mapping[str, FeatureFlagConfig]) -> None:
    """Raise FlagConfigError, naming the flag and the fix, for the first config that is wrong."""
    for key, config in config_map.items():
        if not isinstance(config, FeatureFlagConfig):
            raise FlagConfigError(
                f"{key}: FF_CONFIG_MAP values must be FeatureFlagConfig instances, got {config!r}"
            )
        name = getattr(config, "FLAG_NAME", None)
        if name != key:
            raise FlagConfigError(
                f"{key}: FLAG_NAME is {name!r}; make it {key!r} or change the FF_CONFIG_MAP key"
            )
        if config.default_variant not in config._names:
            variants = ", ".join(config._members)
            raise FlagConfigError(
                f"{key}: DEFAULT_VARIANT {config.default_variant!r} is not one of {variants}"
            )


# -- per-app state ------------------------------------------------------------------------------------


class _Snapshot:
    forced: Mapping[str, str] = MappingProxyType({})
    user_overrides: Mapping[str, Mapping[str, str]] = MappingProxyType({})


_EMPTY_SNAPSHOT = _Snapshot()


def _default_user_loader() -> Any:
    """The logged-in user from Flask-Login, or None (also when the app does not use Flask-Login)."""
    if _login_current_user is None or not hasattr(current_app, "login_manager"):
        return None
    user = _login_current_user._get_current_object()
    return user if getattr(user, "is_authenticated", False) else None


def _default_can_override(user: Any) -> bool:
    """Admins may override their own flags; everyone may while the app runs in debug mode."""
    return current_app.debug or bool(getattr(user, "is_admin", False))


class GatekeeperState:
    """What `init_app` attaches to an app: its flags, its store and its policies."""

    def __init__(
        self,
        config_map: Mapping[str, FeatureFlagConfig],
        store: Any = None,
        can_override: Callable[[Any], bool] | None = None,
        user_loader: Callable[[], Any] | None = None,
    ) -> None:
        self.config_map = config_map
        self.store = store
        self.can_override = can_override or _default_can_override
        self.user_loader = user_loader or _default_user_loader
        self.pinned: dict[str, str] = {}
        self._warned: set[Any] = set()

    def warn_once(self, key: Any, message: str, *args: Any) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(message, *args)


def get_state(app: Flask | None = None) -> GatekeeperState:
    """The gatekeeper state of `app` (default: the current app); raises if `init_app` was not called."""
    app = app or current_app
    try:
        return app.extensions["gatekeeper"]
    except KeyError:
        raise RuntimeError("gatekeeper.init_app(app, FF_CONFIG_MAP) was not called for this app") from None


def _standalone_state(config_map: Mapping[str, FeatureFlagConfig] | None) -> GatekeeperState:
    """State for a Gatekeeper given its own config map, outside an app that ran `init_app`."""
    if config_map is None:
        raise RuntimeError("gatekeeper.init_app(app, FF_CONFIG_MAP) was not called for this app")
    validate_config_map(config_map)
    return GatekeeperState(config_map)


# -- the evaluator ------------------------------------------------------------------------------------


class Gatekeeper:
    """Answers flag questions for one user; in a request, `request.gk` is one of these.

    Every flag is evaluated at most once per Gatekeeper, so a page that asks twenty times sees one answer.
    Outside a request (CLI, jobs) build one with ``Gatekeeper(user_id=...)`` inside an app context.
    """

    # Built on every request: it holds little, and looks up the user and the overrides when first asked.
    __slots__ = (
        "_anonymous_id",
        "_flags",
        "_overrides",
        "_state",
        "_user",
        "_user_id",
        "app",
        "request",
        "session",
    )

    def __init__(
        self,
        user_id: Any = None,
        app: Flask | None = None,
        request: Request | None = None,
        session: Any = None,
        config_map: Mapping[str, FeatureFlagConfig] | None = None,
    ) -> None:
        if app is None:
            app = current_app._get_current_object()
        state = app.extensions.get("gatekeeper")
        if state is None or (config_map is not None and config_map is not state.config_map):
            state = _standalone_state(config_map)
        self.app = app
        self.request = request
        self.session = session
        self._state = state
        # In a request the user is looked up on the first flag check, so requests that check none pay nothing.
        self._user_id = _MISSING if user_id is None and request is not None else user_id
        self._user = _MISSING
        # flag -> {variant: ff()'s answer, ..., _EVALUATION: the Evaluation}, filled as flags are asked.
        self._flags: dict[str, dict[Any, Any]] = {}
        # (pinned, browser overrides, store snapshot), or () when nothing can override; loaded on first use.
        self._overrides: tuple[Any, ...] | None = None
        self._anonymous_id: str | None = None

    @property
    def config_map(self) -> Mapping[str, FeatureFlagConfig]:
        return self._state.config_map

    @property
    def user_id(self) -> Any:
        """The id of the user the flags are for; in a request, the logged-in user's, looked up lazily."""
        if self._user_id is _MISSING:
            self._user_id = getattr(self.user, "id", None)
        return self._user_id

    @property
    def user(self) -> Any:
        """The logged-in user object in a request (None when anonymous or outside a request)."""
        if self._user is _MISSING:
            self._user = self._state.user_loader() if self.request is not None else None
        return self._user

    # -- the seed's API ---------------------------------------------------------------------------

    def ff(self, flag: str, variant: str) -> bool:
        """Shorthand for `feature_flag`: does this user get `variant` of `flag`?"""
        # The hot path: two dict lookups, after one evaluation per flag. A question naming no flag or
        # variant (or an unhashable one) ends in KeyError or TypeError.
        try:
            answers = self._flags.get(flag)
            if answers is None:
                answers = self._evaluate_flag(flag)
            return answers[variant]
        except (KeyError, TypeError):
            return self._mistaken(flag, variant)

    def feature_flag(self, flag: str, variant: str) -> bool:
        return self.ff(flag, variant)

    def ff_variant(self, flag: str, user_id_override: Any = None) -> str | None:
        """Shorthand for `get_feature_flag_variant`."""
        return self.get_feature_flag_variant(flag, user_id_override)

    def get_feature_flag_variant(self, flag: str, user_id_override: Any = None) -> str | None:
        """The variant name this user (or `user_id_override`) gets; None for an unknown flag in production."""
        evaluation = self.explain(flag, user_id_override)
        return evaluation.variant if evaluation is not None else None

    def get_config_map(self) -> Mapping[str, FeatureFlagConfig]:
        return self.config_map

    def get_browser_override_variants(self, request: Request | None = None) -> dict[str, str]:
        """The browser overrides in force for this request (valid, signed and allowed ones only)."""
        if request is not None and request is not self.request:
            return read_browser_overrides(request)
        overrides = self._overrides if self._overrides is not None else self._load_overrides()
        return dict(overrides[1]) if overrides else {}

    def set_browser_override_variant(
        self, request: Request, flag: str, variant: str | None
    ) -> Response | None:
        config = self.config_map.get(flag)
        if config is None:
            return None
        return config.set_browser_override_variant(request, variant)

    # -- explanations -----------------------------------------------------------------------------

    def explain(self, flag: str, user_id_override: Any = None) -> Evaluation | None:
        """The variant `flag` gives and the reason; None for an unknown flag in production."""
        config = self._config(flag)
        if config is None:
            return None
        if user_id_override is not None:
            return self._evaluate(flag, config, user_id_override)[_EVALUATION]
        answers = self._flags.get(flag) or self._evaluate_flag(flag)
        return answers[_EVALUATION]

    def evaluations(self) -> list[Evaluation]:
        """The evaluations this Gatekeeper has made, one per flag asked (in a request: the request's)."""
        return [answers[_EVALUATION] for answers in self._flags.values()]

    # -- internals --------------------------------------------------------------------------------

    def _evaluate_flag(self, flag: str) -> dict[Any, Any]:
        """Evaluate `flag` for this Gatekeeper's user, remember it, announce it (KeyError: no such flag)."""
        config = self._state.config_map[flag]
        user_id = self._user_id if self._user_id is not _MISSING else self.user_id
        answers = self._flags[flag] = self._evaluate(flag, config, user_id)
        if flag_evaluated.receivers:
            evaluation = answers[_EVALUATION]
            flag_evaluated.send(
                self.app, flag=flag, variant=evaluation.variant, reason=evaluation.reason, user_id=user_id
            )
        return answers

    def _mistaken(self, flag: Any, variant: Any) -> bool:
        """`ff()` named an unknown flag or variant: raise in development, answer False in production."""
        config = self._config(flag)
        if config is not None:
            self._mistake(("variant", flag, repr(variant)), f"{flag} has no variant {variant!r}", config)
        return False

    def _config(self, flag: Any) -> FeatureFlagConfig | None:
        try:
            config = self.config_map.get(flag)
        except TypeError:
            config = None
        if config is None:
            self._mistake(("flag", repr(flag)), f"unknown flag {flag!r}", None)
        return config

    def _mistake(self, key: Any, message: str, config: FeatureFlagConfig | None) -> None:
        """Loud in development (raise), quiet in production (one warning per mistake per process)."""
        if self.app.debug or self.app.testing:
            hint = f": use one of {', '.join(config._members)}" if config else ": add it to FF_CONFIG_MAP"
            raise UnknownFlagError(message + hint)
        self._state.warn_once(key, "gatekeeper: %s; answering False", message)

    def _evaluate(self, flag: str, config: FeatureFlagConfig, user_id: Any) -> dict[Any, Any]:
        """Walk the evaluation order for one flag and one user; return the flag's answer table."""
        overrides = self._overrides if self._overrides is not None else self._load_overrides()
        if overrides:
            evaluation = self._runtime_override(flag, config, user_id, *overrides)
            if evaluation is not None:
                return config._answers(evaluation)
        if user_id is not None and config._code_overrides:
            name = config._code_overrides.get(str(user_id))
            if name is not None:
                return config._answers(
                    Evaluation(flag, name, USER_OVERRIDE, f"overrides in code for user {user_id}")
                )
        try:
            result = config._get_variant(
                user_id=user_id, app=self.app, request=self.request, session=self.session
            )
        except Exception as error:
            log.exception("gatekeeper: the rule of %s raised; serving %s", flag, config.default_variant)
            return config._answers(
                Evaluation(flag, config.default_variant, DEFAULT, f"rule raised {type(error).__name__}")
            )
        if type(result) is config.variants_enum:
            return config._rule_answers[result._name_]
        name = config._variant_name(result)
        if name is None:
            log.error(
                "gatekeeper: the rule of %s returned %r, not a variant; serving %s",
                flag,
                result,
                config.default_variant,
            )
            return config._answers(
                Evaluation(flag, config.default_variant, DEFAULT, f"rule returned {result!r}")
            )
        return config._rule_answers[name]

    def _load_overrides(self) -> tuple[Any, ...]:
        """Fetch, once per Gatekeeper, everything that can override a rule; () when nothing can."""
        state = self._state
        snapshot = _EMPTY_SNAPSHOT
        if state.store is not None:
            try:
                snapshot = state.store.snapshot()
            except Exception as error:
                # The store should never raise here; if it does, flags still answer from code rules.
                state.warn_once(("store", type(error)), "gatekeeper: the store failed (%r), ignored", error)
        browser = read_browser_overrides(self.request, gatekeeper=self) if self.request is not None else None
        if state.pinned or browser or snapshot.forced or snapshot.user_overrides:
            self._overrides = (state.pinned, browser or {}, snapshot)
        else:
            self._overrides = ()
        return self._overrides

    def _runtime_override(
        self, flag: str, config: FeatureFlagConfig, user_id: Any, pinned: Any, browser: Any, snapshot: Any
    ) -> Evaluation | None:
        """A variant from forced_variant(), the browser cookie or the store, in that order; else None."""
        name = pinned.get(flag)
        if name is not None:
            return Evaluation(flag, name, FORCED, "forced_variant() in code")
        name = browser.get(flag)
        if name is not None:
            return Evaluation(flag, name, BROWSER_OVERRIDE, "your override cookie")
        name = snapshot.forced.get(flag)
        if name is not None and name in config._names:
            return Evaluation(flag, name, FORCED, "forced for everyone")
        stored = snapshot.user_overrides.get(flag) if user_id is not None else None
        name = stored.get(str(user_id)) if stored else None
        if name is not None and name in config._names:
            return Evaluation(flag, name, USER_OVERRIDE, f"stored override for user {user_id}")
        return None

    def _get_anonymous_id(self) -> str:
        """This visitor's long-lived random id, set as a cookie the first time a rollout needs it."""
        if self._anonymous_id is None:
            value = self.request.cookies.get(ANONYMOUS_COOKIE, "") if self.request is not None else ""
            if _ANONYMOUS_ID.fullmatch(value):
                self._anonymous_id = value
            else:
                self._anonymous_id = secrets.token_hex(16)
                after_this_request(functools.partial(_set_anonymous_cookie, self._anonymous_id))
        return self._anonymous_id


def _set_anonymous_cookie(value: str, response: Response) -> Response:
    response.set_cookie(
        ANONYMOUS_COOKIE,
        value,
        max_age=ANONYMOUS_COOKIE_MAX_AGE,
        httponly=True,
        samesite="Lax",
        secure=flask_request.is_secure,
    )
    return response


def current_gatekeeper() -> Gatekeeper:
    """The request's Gatekeeper (`request.gk`), or one for no user outside a request."""
    if has_request_context():
        request = flask_request._get_current_object()
        gk = getattr(request, "gk", None)
        if gk is None:
            gk = request.gk = Gatekeeper(
                app=current_app._get_current_object(), request=request, session=flask_session
            )
        return gk
    return Gatekeeper()


def anonymous_id() -> str:
    """The current visitor's anonymous id; needs a request."""
    if not has_request_context():
        raise ValueError("no unit id: pass a user id to rollout() outside a request")
    return current_gatekeeper()._get_anonymous_id()


def initialize_gatekeeper(
    user_id: Any = None, app: Flask | None = None, config_map: Mapping[str, FeatureFlagConfig] | None = None
) -> Gatekeeper:
    """The seed's constructor: a Gatekeeper for the current request (or `user_id`, outside one)."""
    app = app if app is not None else current_app._get_current_object()
    if has_request_context():
        request = flask_request._get_current_object()
        return Gatekeeper(
            user_id=user_id, app=app, request=request, session=flask_session, config_map=config_map
        )
    return Gatekeeper(user_id=user_id, app=app, config_map=config_map)


# -- browser overrides ------------------------------------------------------------------------------


def _signer(app: Flask) -> URLSafeSerializer:
    return URLSafeSerializer(app.secret_key, salt=_SIGNER_SALT)


def read_browser_overrides(
    request: Request, *, check_permission: bool = True, gatekeeper: Gatekeeper | None = None
) -> dict[str, str]:
    """The valid entries of the signed override cookie; {} when absent, forged, malformed or not allowed."""
    raw = request.cookies.get(OVERRIDE_COOKIE)
    if not raw or len(raw) > OVERRIDE_COOKIE_MAX_LENGTH:
        return {}
    gk = gatekeeper if gatekeeper is not None else current_gatekeeper()
    state = gk._state
    if check_permission and not state.can_override(gk.user):
        return {}
    try:
        data = _signer(gk.app).loads(raw)
    except (BadSignature, ValueError, TypeError):
        return {}
    if not isinstance(data, dict):
        return {}
    valid = {}
    for flag, variant in data.items():
        config = state.config_map.get(flag) if isinstance(flag, str) else None
        if config is not None and isinstance(variant, str) and variant in config._names:
            valid[flag] = variant
    return valid


def write_browser_overrides(response: Response, overrides: Mapping[str, str]) -> Response:
    """Store `overrides` in the signed cookie on `response` (or delete the cookie when empty)."""
    secure = has_request_context() and flask_request.is_secure
    if not overrides:
        response.delete_cookie(OVERRIDE_COOKIE, httponly=True, samesite="Lax", secure=secure)
        return response
    response.set_cookie(
        OVERRIDE_COOKIE,
        _signer(current_app).dumps(dict(overrides)),
        max_age=OVERRIDE_COOKIE_MAX_AGE,
        httponly=True,
        samesite="Lax",
        secure=secure,
    )
    return response


# -- Flask wiring -------------------------------------------------------------------------------------


def init_app(
    app: Flask,
    config_map: Mapping[str, FeatureFlagConfig],
    *,
    store: Any = None,
    can_override: Callable[[Any], bool] | None = None,
    user_loader: Callable[[], Any] | None = None,
) -> GatekeeperState:
    """Validate the flags and wire them into `app`: `request.gk`, Jinja `ff`/`gk`, `flask gk`.

    `store` supplies runtime overrides (any object with `snapshot()`); `can_override(user)` decides who may
    use browser overrides; `user_loader()` returns the logged-in user (default: Flask-Login's).
    """
    validate_config_map(config_map)
    state = GatekeeperState(config_map, store=store, can_override=can_override, user_loader=user_loader)
    app.extensions["gatekeeper"] = state

    def attach_gatekeeper() -> None:
        request = flask_request._get_current_object()
        # Positional: CPython builds the object noticeably faster than with keywords, on every request.
        request.gk = Gatekeeper(None, app, request, flask_session)

    app.before_request(attach_gatekeeper)
    app.jinja_env.globals["ff"] = _template_ff
    app.jinja_env.globals["gk"] = LocalProxy(current_gatekeeper)
    app.cli.add_command(cli)
    return state


def _template_ff(flag: str, variant: str) -> bool:
    return current_gatekeeper().ff(flag, variant)


F = TypeVar("F", bound=Callable[..., Any])


def flag_required(flag: str, variant: str) -> Callable[[F], F]:
    """Serve the view only to users who get `variant` of `flag`; everyone else gets a 404."""

    def decorator(view: F) -> F:
        @functools.wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if not current_gatekeeper().ff(flag, variant):
                abort(404)
            return view(*args, **kwargs)

        return wrapped

    return decorator


@contextmanager
def forced_variant(flag: str, variant: str, app: Flask | None = None) -> Iterator[None]:
    """Serve `variant` of `flag` to everyone inside the block, then restore what was there (for tests)."""
    state = get_state(app)
    config = state.config_map.get(flag)
    if config is None or variant not in config._names:
        raise UnknownFlagError(f"forced_variant: {flag!r} has no variant {variant!r}")
    previous = state.pinned.get(flag)
    state.pinned[flag] = variant
    try:
        yield
    finally:
        if previous is None:
            state.pinned.pop(flag, None)
        else:
            state.pinned[flag] = previous


# -- `flask gk` ---------------------------------------------------------------------------------------

cli = AppGroup("gk", help="Inspect and control feature flags.")


@cli.command("list")
@with_appcontext
def list_command() -> None:
    """List every flag with its variants, default and description."""
    for name, config in sorted(get_state().config_map.items()):
        variants = " ".join(config._members)
        click.echo(f"{name}  [{variants}]  default={config.default_variant}{_ownership(config)}")
        if config.DESCRIPTION:
            click.echo(f"    {config.DESCRIPTION}")


def _ownership(config: FeatureFlagConfig) -> str:
    """`  owner=... expires=...` for `flask gk list`, with "(expired)" once the date has passed."""
    owner = f"  owner={config.OWNER}" if config.OWNER else ""
    expired = " (expired)" if config.is_expired() else ""
    return f"{owner}  expires={config.expires.isoformat()}{expired}" if config.expires else owner


@cli.command("explain")
@click.argument("flag")
@click.option("--user", "user_id", default=None, help="A user id; without it, an anonymous user.")
@with_appcontext
def explain_command(flag: str, user_id: str | None) -> None:
    """Show the variant FLAG gives a user, and why."""
    state = get_state()
    if flag not in state.config_map:
        raise click.BadParameter(
            f"unknown flag; known flags: {', '.join(sorted(state.config_map))}", param_hint="FLAG"
        )
    if user_id is not None and user_id.isdigit():
        user_id = int(user_id)
    evaluation = Gatekeeper(user_id=user_id).explain(flag)
    assert evaluation is not None
    detail = f" ({evaluation.detail})" if evaluation.detail else ""
    click.echo(f"{flag} = {evaluation.variant}  because: {evaluation.reason}{detail}")
