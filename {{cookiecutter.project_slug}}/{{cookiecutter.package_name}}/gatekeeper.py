"""Gatekeeper: the feature-flag engine.

A drop-in module: it imports only the standard library, Flask and its own dependencies (itsdangerous,
blinker, click) and, when it is installed, Flask-Login. Nothing from the app it serves.

Evaluation order for a flag (the first that applies wins, and the result records why):

1. ``browser_override``: the signed ``gatekeeper`` cookie, honoured only for users allowed to override;
2. ``disabled``: the flag is switched off at runtime: everyone gets ``DEFAULT_VARIANT``;
   ``forced``: a variant forced for everyone (``forced_variant`` in tests, which comes first of all, so that
   a test's choice holds whatever cookie or store it meets);
   ``prerequisite``: the flag requires another flag's variant (``PREREQUISITES = {"NEW_CHECKOUT": "ON"}``
   in code, or stored at runtime) and this user does not get it: ``DEFAULT_VARIANT``, and the detail says
   which, with the chain;
3. ``user_override``: a per-user override from the store, then ``overrides`` given in code;
4. ``group_target``: the user is in a group (stored, or registered in code) that the flag targets;
5. ``rule``: the config's ``_get_variant``, whose ``self.rollout()`` uses the weights stored at runtime for
   the flag when there are any, else the weights in code;
6. ``default``: ``DEFAULT_VARIANT``, when the rule returns None (no match: a normal outcome, detail "") or
   fails, raising or returning something that is not a variant (logged, and the detail says why). A flag
   with no rule of its own serves its default to everyone.

A variant may carry a value (``VALUES = {"ON": 25, "OFF": 5}``, JSON types, one type per flag; without
``VALUES`` the values are the variant names): ``request.gk.value(FLAG)``, or ``gk.value(FLAG)`` in Jinja,
is the value of the variant the user gets, or the one an admin stored for it at runtime. A rule that
declares a ``context`` parameter gets the evaluation context: ``{"key": the user id as text, ...}`` plus
the attributes ``init_app(..., context_loader=...)`` reads from the user (default: the ones named in the
``GATEKEEPER_CONTEXT_ATTRIBUTES`` setting, email and is_admin) and those the app adds with
``request.gk.add_context(...)``; built once per Gatekeeper, only when a rule asks for it.

Steps 1 to 4 are the functions in ``EVALUATION_STEPS``, one question each, asked in that order. The engine
never knows about time: a scheduled change becomes an ordinary stored change when it is due.

Who the flags are for comes from one hook, ``init_app(..., user_loader=...)`` (default: Flask-Login's current
user when the app has a LoginManager). It may return what apps have: a user object with an ``id``, a mapping
or row with an ``"id"`` key (a ``sqlite3.Row`` included), a plain id (``int`` or ``str``), or None for an
anonymous visitor (as is an object whose ``is_authenticated`` is false). Anything else, such as a user with
no readable id, raises ``TypeError`` in debug and testing and logs one warning in production, where the
visitor is then served as anonymous: never silently. ``can_override(user)`` and ``can_manage(user)`` (who
may use browser overrides, who may open the dashboard) get what the hook returned.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import inspect
import json
import logging
import math
import operator
import re
import secrets
import struct
import time
from abc import ABC
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import date
from enum import Enum
from types import MappingProxyType
from typing import Any, NamedTuple, TypeVar

import click
from blinker import Namespace
from flask import Flask, Request, Response, abort, after_this_request, current_app, has_request_context
from flask import g as flask_g
from flask import request as flask_request
from flask import session as flask_session
from flask.cli import AppGroup, with_appcontext
from itsdangerous import BadData, URLSafeSerializer
from werkzeug.datastructures import ImmutableMultiDict
from werkzeug.local import LocalProxy

try:  # Flask's own context variables (Flask 2.2+): a flag check reads them directly, since each hop
    # through a proxy (`g`, `request`) costs more than the rest of the check
    from flask.globals import _cv_app, _cv_request
except ImportError:  # pragma: no cover - a Flask without them: the proxies do the same, slower
    _cv_app = _cv_request = None

try:  # CPython's own SHA-256 (3.12+: _sha2, 3.11: _sha256): for a 40-byte key it takes about three
    # quarters of OpenSSL's time through hashlib, which pays for its generality on every call. Same digest.
    from _sha2 import sha256 as _sha256
except ImportError:  # pragma: no cover - depends on the Python version
    try:
        from _sha256 import sha256 as _sha256
    except ImportError:
        _sha256 = hashlib.sha256

try:  # optional: without it, pass init_app a user_loader
    from flask_login import AnonymousUserMixin as _LoginAnonymousUser
    from flask_login import UserMixin as _LoginUserMixin
    from flask_login import current_user as _login_current_user
except ImportError:
    _LoginAnonymousUser = _LoginUserMixin = _login_current_user = None

log = logging.getLogger(__name__)

BROWSER_OVERRIDE = "browser_override"
FORCED = "forced"
USER_OVERRIDE = "user_override"
GROUP_TARGET = "group_target"
RULE = "rule"
DEFAULT = "default"
DISABLED = "disabled"
PREREQUISITE = "prerequisite"

# A value's JSON type, by its Python type (bool before int: True is an int to Python, never to JSON).
VALUE_TYPES = {bool: "boolean", int: "integer", float: "float", str: "string", list: "list", dict: "object"}
# The settings names the default context loader reads from the user, unless GATEKEEPER_CONTEXT_ATTRIBUTES
# names others. Never every attribute: a password hash must never reach a rule or the dashboard.
DEFAULT_CONTEXT_ATTRIBUTES = ("email", "is_admin")

OVERRIDE_COOKIE = "gatekeeper"
OVERRIDE_COOKIE_MAX_AGE = 30 * 24 * 3600
OVERRIDE_COOKIE_MAX_LENGTH = 4096
ANONYMOUS_COOKIE = "gk_anon"
ANONYMOUS_COOKIE_MAX_AGE = 2 * 365 * 24 * 3600
ROLLOUT_BUCKETS = 10_000
# Rollout buckets kept per process, by key (flag, salt and unit): a returning unit's next page skips the
# SHA-256 (about 4,000 instructions a flag). Emptied when full: at most this many short strings and ints.
RECENT_BUCKETS = 4096
_recent_buckets: dict[str, int] = {}

_SIGNER_SALT = "gatekeeper-browser-overrides"
_ANONYMOUS_ID = re.compile(r"[0-9a-f]{32}")
_MISSING: Any = object()
_first_8_bytes = struct.Struct(">Q").unpack_from
_RULE_ARGUMENTS = ("user_id", "app", "request", "session")
_PLAIN_IDS = (str, int)  # a tuple: `str | int` would build a new union on every call
_EVALUATION: Any = object()  # the key of the Evaluation in a flag's answer table (never a variant name)
_new_object = object.__new__
_evaluation_of = operator.itemgetter(_EVALUATION)
# The Gatekeeper whose weights stored at runtime `rollout()` obeys, for any flag's rule (a rule may ask
# another flag's `rollout()`): a request's own Gatekeeper sets it once, at its first flag, when the store
# holds any weights, and the request's `close()` clears it; any other Gatekeeper sets it around each rule
# while there are some (see Gatekeeper._evaluate).
_rule_gatekeeper: ContextVar[Gatekeeper | None] = ContextVar("gatekeeper_rule_gatekeeper", default=None)

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


def value_type(value: Any) -> str | None:
    """The JSON type of a flag value ("boolean", "integer", "float", "string", "list", "object"), or None
    when it is not one, or holds something JSON cannot (a set, a date, NaN, a non-text key)."""
    kind = VALUE_TYPES.get(type(value))
    if kind in ("list", "object"):
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            return None
    if kind == "float" and not math.isfinite(value):
        return None
    return kind


def rollout_bucket(key: str) -> int:
    """The rollout bucket, 0 to 9999, of a key such as ``"FLAG:SALT:UNIT"``: stable across processes.

    The first 8 bytes of the SHA-256 of the key's UTF-8 bytes, read as a big-endian unsigned integer,
    modulo 10,000: the same on every machine and Python version, and independent between flags.
    """
    return _first_8_bytes(_sha256(key.encode()).digest())[0] % ROLLOUT_BUCKETS


def rollout_ranges(weights: Mapping[str, float]) -> dict[str, tuple[float, float]]:
    """The share of buckets each variant owns, as percent ranges [start, end), in the order given."""
    ranges, start = {}, 0.0
    for variant, weight in weights.items():
        ranges[variant] = (start, start + weight)
        start += weight
    return ranges


def rollout_share(bucket: int, weights: Mapping[str, float]) -> tuple[str, int, int] | None:
    """The variant whose range holds `bucket`, and that range's first and last bucket, as ``rollout()``
    lays the weights out; None when the weights hold no such range (they do not add up to 100)."""
    start = 0.0
    for variant, weight in weights.items():
        first = math.ceil(round(start * 100, 6))
        end = math.ceil(round((start + weight) * 100, 6)) - 1
        if weight > 0 and first <= bucket <= end:
            return variant, first, end
        start += weight
    return None


def rollout_moves(old: Mapping[str, float], new: Mapping[str, float]) -> dict[str, float]:
    """Per variant, the percent of all units that lose it although its weight did not shrink that much.

    A ramp (ON 10 -> 20, OFF 90 -> 80) moves only what it must: {}. Growing the first arm of an experiment
    shifts the ranges of the arms after it, e.g. A 10 -> 20 with B at 10 moves all of B's units: {"B": 10}.
    """
    old_ranges, new_ranges = rollout_ranges(old), rollout_ranges(new)
    moves = {}
    for variant, (start, end) in old_ranges.items():
        new_start, new_end = new_ranges.get(variant, (0.0, 0.0))
        kept = max(0.0, min(end, new_end) - max(start, new_start))
        must_lose = max(0.0, (end - start) - (new_end - new_start))
        extra = round((end - start) - kept - must_lose, 6)
        if extra > 0:
            moves[variant] = extra
    return moves


class FeatureFlagConfig(ABC):
    """One flag: its variants and the rule that picks one. Subclass it once per flag.

    ``FLAG_NAME``, ``VARIANTS_ENUM_STR`` (space-separated names) and ``DESCRIPTION`` describe the flag;
    ``DEFAULT_VARIANT`` is what users get when the rule fails (the last variant if not set);
    ``overrides={'VISIBLE': [1, 2, 3]}`` pins users to variants in code; ``ROLLOUT = {"ON": 10, "OFF": 90}``
    is the weights ``self.rollout(unit_id)`` uses (until weights are set at runtime).
    ``OWNER`` (who to ask) and ``EXPIRES`` (``"2027-03-01"``, the date the flag should be gone by) are
    optional; ``flask gk list``, ``flask gk check`` and the dashboard show them. ``TAGS = ("checkout",
    "experiment")``, optional, are words to find and filter flags by on the dashboard (checked by ``flask gk
    check``).
    ``VALUES = {"ON": 25, "OFF": 5}`` gives each variant a value (see `Gatekeeper.value`), all of one JSON
    type; ``VALUE_SCHEMA`` (a JSON Schema) constrains them, and the values stored at runtime, further (checked
    by gatekeeper_control, which adds its check to ``CONFIG_CHECKS``).
    ``METADATA = {"team": "growth"}`` is the flag's OpenFeature ``flag_metadata`` (text, numbers, booleans).
    ``PREREQUISITES = {"NEW_CHECKOUT": "ON"}``: only users who get ON of NEW_CHECKOUT can get anything but
    ``DEFAULT_VARIANT`` (checked at start: the flags and variants exist, and no flag requires itself).
    ``CLIENT_SIDE = True`` lets the flag reach browsers (``gk.bootstrap()``, OFREP for a session); no other
    flag's name, variants or values ever do.
    Without a rule of its own (``_get_variant``) a flag serves ``DEFAULT_VARIANT`` to everyone.
    """

    FLAG_NAME: str
    VARIANTS_ENUM_STR: str
    DESCRIPTION: str = ""
    DEFAULT_VARIANT: str | None = None
    ROLLOUT_SALT: str = ""
    ROLLOUT: Mapping[str, float] | None = None
    OWNER: str = ""
    EXPIRES: str | date | None = None
    TAGS: tuple[str, ...] = ()
    VALUES: Mapping[str, Any] | None = None
    VALUE_SCHEMA: Mapping[str, Any] | None = None
    METADATA: Mapping[str, Any] | None = None
    PREREQUISITES: Mapping[str, str] | None = None
    CLIENT_SIDE: bool = False

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
        self._positional_rule = _takes_the_seed_arguments(self._get_variant)
        self.has_own_rule = type(self)._get_variant is not FeatureFlagConfig._get_variant
        self._context_rule = _declares_context(self._get_variant)
        # Nothing in code to ask before the rule, which takes the seed's arguments: a first evaluation with
        # nothing stored goes straight to it (Gatekeeper.ff).
        self._plain_rule = self._positional_rule and not self._context_rule and not self._code_overrides
        self.values, self.value_type = self._check_values(names)
        self.metadata = self._check_metadata()
        self._prerequisites = tuple((self.PREREQUISITES or {}).items())
        self._plain_rule = self._plain_rule and not self._prerequisites
        self._rollout_flag = self._flag_name()
        # Per variant, the answer to `ff(flag, v)` for every v and the evaluation "the rule says so": the
        # common first evaluation picks one of these prebuilt tables, so it allocates nothing per request.
        self._rule_answers = {
            name: {
                **{other: other == name for other in names},
                _EVALUATION: Evaluation(self._flag_name(), name, RULE),
            }
            for name in names
        }
        default = self.default_variant  # (checked to be a variant by validate_config_map)
        self._default_answers = {
            **{other: other == default for other in names},
            _EVALUATION: Evaluation(self._flag_name(), default, DEFAULT),
        }
        # What a flag check and `rollout()` read, one tuple each: the engine's code sees every flag's class
        # at the same lines, so each attribute read there is a look-up in CPython's type cache (4,096 entries
        # shared by the whole process, where a collision costs a walk up the class's bases): one read, not
        # four or five. The rule is bound here, once. Answers are keyed by the member's id(): an Enum hashes
        # in Python, and its `_name_` is one more such read.
        self._rule_answers_by_member = {id(self._members[name]): self._rule_answers[name] for name in names}
        self._hot = (self._plain_rule, self._get_variant, self._rule_answers_by_member)
        self._rollout_hot = (self._rollout_flag, self._names, self._rollout_prefix, self._members)

    # -- the rule ---------------------------------------------------------------------------------

    def _get_variant(
        self,
        user_id: Any = None,
        app: Flask | None = None,
        request: Request | None = None,
        session: Any = None,
    ) -> Any:
        """Return one of ``self.variants_enum`` (or its name) for this user, or None for the default.

        Declare a ``context`` parameter to get the evaluation context (a mapping of attributes). Without a
        rule of its own the flag serves ``DEFAULT_VARIANT`` to everyone.
        """
        return None

    def rollout(self, unit_id: Any, weights: Mapping[str, float] | None = None) -> Enum:
        """Pick a variant by weight (percentages summing to 100), sticky for ``unit_id``.

        The weights are those stored at runtime for this flag (``flask gk rollout``, the dashboard) when
        there are any, else ``weights``, else the class's ``ROLLOUT``.

        The unit's bucket is ``rollout_bucket(f"{FLAG_NAME}:{ROLLOUT_SALT}:{unit_id}")``, 0 to 9999; variants
        own consecutive ranges of buckets in the order given, the first from 0. Raising a variant's weight
        keeps everyone who had it, as long as the variants before it keep theirs. A ``unit_id`` of None means
        the visitor's anonymous id (a long-lived cookie) inside a request.
        """
        # Never change this hashing or the order of the ranges: every user would move to another variant.
        flag, names, prefix, members = self._rollout_hot
        gk = _rule_gatekeeper.get()
        stored = gk._weights.get(flag) if gk is not None else None
        if stored is not None and stored.keys() <= names:  # else stale: a variant left the code
            weights = stored
        elif weights is None:
            weights = self.ROLLOUT
            if weights is None:
                raise FlagConfigError(f"{self._flag_name()}: rollout() needs weights, or set ROLLOUT")
        if unit_id is None:  # the visitor's anonymous id: anonymous_id(), with its look-ups inlined
            context = _cv_request.get(None) if _cv_request is not None else None
            request_gk = context.request.__dict__.get("gk") if context is not None else None
            if request_gk is not None:
                unit_id = request_gk._anonymous_id or request_gk._get_anonymous_id()
            if unit_id is None:
                unit_id = anonymous_id()
        key = f"{prefix}{unit_id}"
        bucket = _recent_buckets.get(key)
        if bucket is None:  # rollout_bucket(key), inlined for speed
            bucket = _first_8_bytes(_sha256(key.encode()).digest())[0] % ROLLOUT_BUCKETS
            if len(_recent_buckets) >= RECENT_BUCKETS:
                _recent_buckets.clear()
            _recent_buckets[key] = bucket
        point = bucket / (ROLLOUT_BUCKETS // 100)
        total, chosen = 0, None
        for variant, weight in weights.items():
            total += weight
            if chosen is None and point < total:
                chosen = variant
        if total != 100 and abs(total - 100) > 1e-9:
            raise ValueError(f"{self._flag_name()}: rollout weights add up to {total}, not 100")
        # With float weights a rounding can leave the top bucket over: the last variant owns it.
        return members[chosen if chosen is not None else variant]

    def rollout_order(self, variants: Iterable[str]) -> list[str]:
        """`variants` in the order their ranges are laid out: ``ROLLOUT``'s order, then the flag's own.

        Stored weights are kept in this order whatever order they were typed in, so that raising ON from 10
        to 20 with ``ON=20 OFF=80`` or ``OFF=80 ON=20`` keeps every unit that had ON.
        """
        rank = {name: index for index, name in enumerate([*(self.ROLLOUT or {}), *self._members])}
        return sorted(variants, key=lambda name: rank.get(name, len(rank)))

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

    def _check_values(self, names: list[str]) -> tuple[Mapping[str, Any], str]:
        """VALUES checked: one JSON value per variant, all of one type (and VALUE_SCHEMA's, when declared);
        without VALUES, the variant names as text."""
        flag, values = self._flag_name(), self.VALUES
        if values is None:
            return MappingProxyType({name: name for name in names}), "string"
        if not isinstance(values, Mapping):
            raise FlagConfigError(
                f"{flag}: VALUES must be a dict of variant -> value, e.g. VALUES = dict(ON=25, OFF=5)"
            )
        missing = [name for name in names if name not in values]
        unknown = [str(name) for name in values if name not in self._names]
        if missing or unknown:
            raise FlagConfigError(
                f"{flag}: VALUES must give a value to each of {', '.join(names)}"
                + (f"; missing {', '.join(missing)}" if missing else "")
                + (f"; no variant {', '.join(unknown)}" if unknown else "")
            )
        kinds = {name: value_type(values[name]) for name in names}
        bad = [name for name, kind in kinds.items() if kind is None]
        if bad:
            raise FlagConfigError(
                f"{flag}: VALUES[{bad[0]!r}] is {values[bad[0]]!r}, not a JSON value: use a bool, int, "
                "float, str, list or dict of those"
            )
        found = sorted(set(kinds.values()))
        if len(found) > 1:
            listing = ", ".join(f"{name}: {kind}" for name, kind in kinds.items())
            raise FlagConfigError(
                f"{flag}: VALUES mixes {' and '.join(found)} ({listing}); give every variant a value of one "
                "type (e.g. write 1.0 rather than 1 beside 0.5)"
            )
        return MappingProxyType({name: values[name] for name in names}), found[0]

    def _check_metadata(self) -> Mapping[str, Any]:
        flag, metadata = self._flag_name(), self.METADATA
        if metadata is None:
            return MappingProxyType({})
        if not isinstance(metadata, Mapping) or not all(
            isinstance(key, str) and type(value) in (bool, int, float, str) for key, value in metadata.items()
        ):
            raise FlagConfigError(
                f"{flag}: METADATA must map names to text, numbers or booleans, "
                "e.g. METADATA = dict(team='growth')"
            )
        return MappingProxyType(dict(metadata))

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


def _takes_the_seed_arguments(rule: Callable[..., Any]) -> bool:
    """Whether `rule(user_id, app, request, session)` means `rule(user_id=..., app=..., ...)`: the seed's
    signature, which the engine then calls positionally (a keyword call costs about twice as much)."""
    try:
        parameters = list(inspect.signature(rule).parameters.values())[:4]
    except (TypeError, ValueError):
        return False
    return [p.name for p in parameters] == list(_RULE_ARGUMENTS) and all(
        p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD for p in parameters
    )


def _declares_context(rule: Callable[..., Any]) -> bool:
    """Whether a rule takes a ``context`` parameter (then it gets the evaluation context)."""
    try:
        return "context" in inspect.signature(rule).parameters
    except (TypeError, ValueError):
        return False


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
        if config.ROLLOUT is not None:
            _validate_rollout(key, config)
    _validate_prerequisites(config_map)
    for check in CONFIG_CHECKS:
        check(config_map)


# More checks `validate_config_map` runs at start, each raising FlagConfigError: a module beside the engine
# adds its own here (gatekeeper_control's values.py checks VALUES against VALUE_SCHEMA with jsonschema,
# a package the engine itself does without).
CONFIG_CHECKS: list[Callable[[Mapping[str, FeatureFlagConfig]], None]] = []


def _validate_prerequisites(config_map: Mapping[str, FeatureFlagConfig]) -> None:
    """Every PREREQUISITES names a flag and one of its variants, and no chain of them comes back round."""
    for key, config in config_map.items():
        for other, variant in config._prerequisites:
            required = config_map.get(other)
            if required is None:
                raise FlagConfigError(f"{key}: PREREQUISITES names {other!r}, which is not a flag; remove it")
            if variant not in required._names:
                variants = ", ".join(required._members)
                raise FlagConfigError(
                    f"{key}: PREREQUISITES wants {other} {variant!r}; use one of {variants}"
                )
    graph = {key: [other for other, _ in config._prerequisites] for key, config in config_map.items()}
    cycle = prerequisite_cycle(graph)
    if cycle:
        raise FlagConfigError(
            f"{cycle[0]}: PREREQUISITES go round in a circle ({' -> '.join(cycle)}); break it"
        )


def prerequisite_cycle(graph: Mapping[str, Iterable[str]]) -> list[str] | None:
    """A chain of flags that requires itself (["A", "B", "A"]) in `graph` (flag -> the flags it requires),
    or None."""
    done: set[str] = set()
    for start in graph:
        path: list[str] = []
        on_path: set[str] = set()
        stack = [(start, iter(graph.get(start, ())))]
        if start in done:
            continue
        path.append(start)
        on_path.add(start)
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                path.pop()
                on_path.discard(node)
                done.add(node)
            elif child in on_path:
                return [*path[path.index(child) :], child]
            elif child not in done:
                stack.append((child, iter(graph.get(child, ()))))
                path.append(child)
                on_path.add(child)
    return None


def _validate_rollout(key: str, config: FeatureFlagConfig) -> None:
    unknown = [name for name in config.ROLLOUT or {} if name not in config._names]
    if unknown:
        variants = ", ".join(config._members)
        raise FlagConfigError(f"{key}: ROLLOUT names {', '.join(map(str, unknown))}; use {variants}")
    total = sum((config.ROLLOUT or {}).values())
    if abs(total - 100) > 1e-9:
        raise FlagConfigError(f"{key}: ROLLOUT weights add up to {total}, not 100")


class CodeGroup(NamedTuple):
    """A group defined in code: ``predicate(user)`` says whether the logged-in user object belongs."""

    name: str
    predicate: Callable[[Any], bool]
    description: str = ""


# -- per-app state ------------------------------------------------------------------------------------


class _Snapshot:
    """What the engine reads from a store's ``snapshot()``; a store may leave out the targeting fields."""

    forced: Mapping[str, str] = MappingProxyType({})
    user_overrides: Mapping[str, Mapping[str, str]] = MappingProxyType({})
    weights: Mapping[str, Mapping[str, float]] = MappingProxyType({})  # flag -> {variant: percent}
    group_targets: Mapping[str, tuple[tuple[str, str], ...]] = MappingProxyType(
        {}
    )  # flag -> (group, variant)
    memberships: Mapping[str, frozenset[str]] = MappingProxyType({})  # user id -> its stored groups
    disabled: frozenset[str] = frozenset()  # flags switched off
    segments: Mapping[str, Any] = MappingProxyType({})  # segment -> an object with `matches(context)`
    prerequisites: Mapping[str, tuple[tuple[str, str], ...]] = MappingProxyType({})  # flag -> (flag, var)
    # (flag, group) -> {variant: percent}: a target that splits its group, sticky per user (or visitor)
    target_splits: Mapping[tuple[str, str], Mapping[str, float]] = MappingProxyType({})
    values: Mapping[str, Mapping[str, Any]] = MappingProxyType({})  # flag -> {variant: value set at runtime}
    # The flags whose requests `on_response` functions see (None: every flag's).
    watched: frozenset[str] | None = None


_EMPTY_SNAPSHOT = _Snapshot()
_NOTHING_STORED = ({}, {}, _EMPTY_SNAPSHOT)  # (pinned, browser, snapshot) when only code overrides apply
_NO_WEIGHTS: Mapping[str, Mapping[str, float]] = MappingProxyType({})
_NO_FLAGS: frozenset[str] = frozenset()


def _current_request() -> Request | None:
    """The request being handled, or None, read from Flask's context variable (not the `request` proxy)."""
    if _cv_request is None:  # pragma: no cover
        return flask_request._get_current_object() if has_request_context() else None
    context = _cv_request.get(None)
    return context.request if context is not None else None


def _current_g() -> Any:
    """The app context's `g`, read from Flask's context variable (not the `g` proxy)."""
    context = _cv_app.get(None) if _cv_app is not None else None
    return context.g if context is not None else flask_g


def _default_user_loader() -> Any:
    """The logged-in user from Flask-Login, or None (also when the app does not use Flask-Login)."""
    if _login_current_user is None:
        return None
    # Flask-Login keeps the request's user in `g._login_user` once anything asked for it (a layout with a
    # login link does): read it there, rather than through `current_user`'s chain of proxies.
    context = _cv_app.get(None) if _cv_app is not None else None
    g = context.g if context is not None else flask_g  # _current_g(), inlined
    user = g.__dict__.get("_login_user")  # what g.get() returns, without its two lookups
    if user is None:
        if not hasattr(current_app, "login_manager"):
            return None
        user = _login_current_user._get_current_object()
    if type(user) is _LoginAnonymousUser:  # Flask-Login's own anonymous user (its property says False)
        return None
    return user if _always_authenticated(type(user)) or getattr(user, "is_authenticated", False) else None


@functools.cache
def _always_authenticated(user_class: type) -> bool:
    """Whether `user_class` keeps Flask-Login's `UserMixin` properties as they are: `is_authenticated` is
    `is_active`, which is True (two Python calls a signed-in request's first flag check need not make)."""
    if _LoginUserMixin is None:  # pragma: no cover - Flask-Login is in the baked app's requirements
        return False
    mixin = vars(_LoginUserMixin)
    return all(
        inspect.getattr_static(user_class, name, None) is mixin.get(name)
        for name in ("is_authenticated", "is_active")
    )


def user_attribute(user: Any, name: str) -> Any:
    """`name` of what the user hook returned: an attribute of a user object, or a key of a mapping or row;
    None when it has none."""
    value = getattr(user, name, None)
    if value is None and user is not None and not isinstance(user, _PLAIN_IDS):
        try:
            value = user[name]
        except (KeyError, IndexError, TypeError):
            return None
    return value


def _default_user_by_id(user_id: Any) -> Any:
    """The user object for an id (for code groups outside a request), through Flask-Login's user loader."""
    manager = getattr(current_app, "login_manager", None)
    loader = getattr(manager, "_user_callback", None)
    return loader(str(user_id)) if loader is not None else None


def _default_can_override(user: Any) -> bool:
    """Admins may override their own flags; everyone may while the app runs in debug mode."""
    return current_app.debug or bool(user_attribute(user, "is_admin"))


def _default_can_manage(user: Any) -> bool:
    """Admins (a true `is_admin`, attribute or column) may open the dashboard."""
    return bool(user_attribute(user, "is_admin"))


def _user_id_of(user: Any, state: GatekeeperState, app: Flask) -> Any:
    """The id in what the user hook returned (see the module docstring for what it may return)."""
    if user is None:
        return None
    if isinstance(user, _PLAIN_IDS) and not isinstance(user, bool):
        return user
    # A loaded id sits in the object's __dict__, which is what an SQLAlchemy model's `id` reads through a
    # descriptor written in Python (a plain attribute is there too); any other `id` is asked for as such.
    if _id_in_dict(type(user)):
        user_id = user.__dict__.get("id", _MISSING)
        if user_id is not _MISSING:
            return user_id
    user_id = getattr(user, "id", _MISSING)
    if user_id is not _MISSING:
        return user_id
    if getattr(user, "is_authenticated", True) is False:  # e.g. Flask-Login's anonymous user
        return None
    try:
        return user["id"]
    except (KeyError, IndexError, TypeError):
        pass
    message = (
        f"the user hook (user_loader) returned {type(user).__name__!r} with no id: return an object with "
        "`id`, a mapping or row with an 'id' key, a plain id, or None for an anonymous visitor"
    )
    if app.debug or app.testing:
        raise TypeError(f"gatekeeper: {message}")
    state.warn_once(("user", type(user)), "gatekeeper: %s; serving the visitor as anonymous", message)
    return None


@functools.cache
def _id_in_dict(user_class: type) -> bool:
    """Whether `user.__dict__["id"]`, when there, is what `user.id` gives: `id` is a plain attribute or an
    SQLAlchemy column (whose descriptor returns the loaded value kept there), not a property or the like."""
    if not getattr(user_class, "__dictoffset__", 0):  # no __dict__: a mapping, a row, a class with slots
        return False
    descriptor = inspect.getattr_static(user_class, "id", None)
    plain = descriptor is None or not hasattr(type(descriptor), "__get__")
    return plain or type(descriptor).__module__.startswith("sqlalchemy.")


class GatekeeperState:
    """What `init_app` attaches to an app: its flags, its store and its policies."""

    def __init__(
        self,
        config_map: Mapping[str, FeatureFlagConfig],
        store: Any = None,
        can_override: Callable[[Any], bool] | None = None,
        user_loader: Callable[[], Any] | None = None,
        can_manage: Callable[[Any], bool] | None = None,
        user_by_id: Callable[[Any], Any] | None = None,
        context_loader: Callable[[Any], Mapping[str, Any]] | None = None,
        context_attributes: Iterable[str] = DEFAULT_CONTEXT_ATTRIBUTES,
    ) -> None:
        self.config_map = config_map
        self.context_attributes = tuple(context_attributes)
        self.context_loader = context_loader or self.attributes_of
        self.store = store
        self.can_override = can_override or _default_can_override
        self.can_manage = can_manage or _default_can_manage
        self.user_loader = user_loader or _default_user_loader
        self.pinned: dict[str, str] = {}
        self.groups: dict[str, CodeGroup] = {}
        self.user_by_id = user_by_id or _default_user_by_id
        self._warned: set[Any] = set()
        self._steps_cache: tuple[Any, tuple[Callable[..., Any], ...]] | None = None
        self._stored_cache: tuple[Any, frozenset[str]] = (None, frozenset())
        self.responses: list[Callable[[Gatekeeper, Response, float], None]] = []  # see on_response
        self.evaluated: list[Callable[[Gatekeeper, Evaluation], None]] = []  # see on_evaluation

    def steps_for(self, snapshot: Any, cookie_or_pinned: bool) -> tuple[Callable[..., Any], ...]:
        """EVALUATION_STEPS less the ones `snapshot` has nothing for (worked out once per snapshot)."""
        if cookie_or_pinned:
            return EVALUATION_STEPS
        cached = self._steps_cache
        if cached is None or cached[0] is not snapshot:
            idle = {
                _pinned_in_tests,
                _browser_override,
                *([] if snapshot.disabled else [_disabled]),
                *([] if snapshot.forced else [_forced]),
                *([] if snapshot.prerequisites else [_stored_prerequisites]),
                *([] if snapshot.user_overrides else [_stored_user_override]),
                *([] if snapshot.group_targets else [_group_target]),
            }
            cached = self._steps_cache = (snapshot, tuple(s for s in EVALUATION_STEPS if s not in idle))
        return cached[1]

    def stored_flags(self, snapshot: Any) -> frozenset[str]:
        """The flags something in `snapshot` applies to (switched off, forced, a stored prerequisite, user
        override or target): any other flag's stored steps would all pass (worked out once per snapshot)."""
        cached = self._stored_cache
        if cached[0] is not snapshot:
            flags = frozenset(
                [
                    *snapshot.disabled,
                    *snapshot.forced,
                    *snapshot.prerequisites,
                    *snapshot.user_overrides,
                    *snapshot.group_targets,
                ]
            )
            cached = self._stored_cache = (snapshot, flags)
        return cached[1]

    def attributes_of(self, user: Any) -> dict[str, Any]:
        """The default context loader: the attributes named in `context_attributes` that the user has."""
        if user is None:
            return {}
        found = {name: user_attribute(user, name) for name in self.context_attributes}
        return {name: value for name, value in found.items() if value is not None}

    def register_group(self, name: str, predicate: Callable[[Any], bool], description: str = "") -> None:
        """Define group `name` in code: a flag can target it like a stored group (Flipper's groups)."""
        if not isinstance(name, str) or not name.strip() or not callable(predicate):
            raise FlagConfigError(f"register_group: give a name and a predicate(user), not {name!r}")
        self.groups[name] = CodeGroup(name, predicate, description)

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
        return _seed_state()
    validate_config_map(config_map)
    return GatekeeperState(config_map)


@functools.cache
def _seed_state() -> GatekeeperState:
    """The blog post's fallback without `init_app`: `FF_CONFIG_MAP` of the `gatekeeper_config` module
    beside this one (in the same package, or top-level in a flat layout); validated once per process."""
    name = f"{__package__}.gatekeeper_config" if __package__ else "gatekeeper_config"
    try:
        config_map = importlib.import_module(name).FF_CONFIG_MAP
    except (ModuleNotFoundError, AttributeError) as error:
        if isinstance(error, ModuleNotFoundError) and error.name != name:
            raise
        raise RuntimeError(
            f"gatekeeper.init_app(app, FF_CONFIG_MAP) was not called for this app, and {name}.FF_CONFIG_MAP "
            "was not found to fall back on"
        ) from None
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
        "_context",
        "_extra_context",
        "_flags",
        "_overrides",
        "_request_cookies",
        "_resolving",
        "_rules_see_weights",
        "_state",
        "_steps",
        "_touched",
        "_user",
        "_user_id",
        "_values",
        "_watched",
        "_weights",
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
        context: Mapping[str, Any] | None = None,
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
        self._weights: Mapping[str, Mapping[str, float]] = _NO_WEIGHTS
        self._values: Mapping[str, Mapping[str, Any]] = _NO_WEIGHTS
        # The evaluation context: given (OpenFeature's, for one call), or built when a rule first asks.
        self._context: Mapping[str, Any] | None = (
            None if context is None else _given_context(user_id, context)
        )
        self._extra_context: dict[str, Any] | None = None
        self._resolving: set[Any] | None = None  # (flag, user) whose prerequisites are being asked
        self._steps: tuple[Callable[..., Evaluation | None], ...] = EVALUATION_STEPS
        self._touched: frozenset[str] = _NO_FLAGS  # the flags the overrides name (see _load_overrides)
        self._watched: frozenset[str] = _NO_FLAGS  # flags whose first evaluation watches the response
        self._rules_see_weights = False  # set `_rule_gatekeeper` for the whole request (its own Gatekeeper)
        self._anonymous_id: str | None = None
        # The request's parsed cookies, as its first flag read them (see `request_cookies`).
        self._request_cookies: Mapping[str, str] | None = None

    @property
    def config_map(self) -> Mapping[str, FeatureFlagConfig]:
        return self._state.config_map

    @property
    def user_id(self) -> Any:
        """The id of the user the flags are for; in a request, the logged-in user's, looked up lazily."""
        return self._user_id if self._user_id is not _MISSING else self._load_user_id()

    @property
    def request_cookies(self) -> Mapping[str, str] | None:
        """The request's parsed cookies (`request.cookies`) as its first flag read them, for `cookie_in`;
        None outside a request, or before a flag was asked. Kept, unlike the request, past its end: what
        runs then (`on_request_end`) reads a cookie without keeping the request alive."""
        try:
            return self._request_cookies
        except AttributeError:  # `request.gk` sets it at its first flag (see _RequestGatekeeper)
            return None

    @property
    def user(self) -> Any:
        """What the user hook returned in this request (None when anonymous or outside a request)."""
        return self._user if self._user is not _MISSING else self._load_user()

    # -- the seed's API ---------------------------------------------------------------------------

    def ff(self, flag: str, variant: str) -> bool:
        """Shorthand for `feature_flag`: does this user get `variant` of `flag`?"""
        # The hot path: two dict lookups, after one evaluation per flag, which is written out here (a call
        # less per flag: a tenth of a first check). A question naming no flag or variant (or an unhashable
        # one) ends in KeyError or TypeError. The engine asks `ff(flag, _EVALUATION)` for the Evaluation.
        try:
            answers = self._flags.get(flag)
            if answers is not None:
                return answers[variant]
            state = self._state
            config = state.config_map[flag]
        except (KeyError, TypeError):
            return self._mistaken(flag, variant)
        # Evaluate `flag` for this Gatekeeper's user, remember it, announce it.
        plain_rule, rule, rule_answers = config._hot
        user_id = self._user_id
        if user_id is _MISSING:
            user_id = self._load_user_id()
        overrides = self._overrides
        if overrides is None:
            overrides = self._load_overrides()
        if (
            not plain_rule
            or (overrides and flag in self._touched)
            or (self._weights and not self._rules_see_weights)
        ):
            answers = self._evaluate(flag, config, user_id)
        else:  # the usual case, `_evaluate` with nothing to ask before the rule (a call less per flag)
            try:
                result = rule(user_id, self.app, self.request, self.session)
            except Exception as error:
                answers = _rule_raised(flag, config, error)
            else:
                answers = rule_answers.get(id(result))  # a member of the flag's enum
                if answers is None:
                    answers = _rule_result(flag, config, result)
        self._flags[flag] = answers
        if flag in self._watched:  # the request's first flag the store watches: hand its response over
            self._watched = _NO_FLAGS
            _watch_response(state.responses, self)
        if state.evaluated:
            _announce(state.evaluated, self, answers[_EVALUATION])
        if flag_evaluated.receivers:
            evaluation = answers[_EVALUATION]
            flag_evaluated.send(
                self.app, flag=flag, variant=evaluation.variant, reason=evaluation.reason, user_id=user_id
            )
        try:
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

    def value(self, flag: str, default: Any = None) -> Any:
        """The value of the variant of `flag` this user gets: the one stored at runtime for that variant
        (``flask gk value``, the dashboard), else the flag's ``VALUES``, else the variant name. `default`
        for a flag no config declares (in production; in debug and testing that raises, as ``ff()`` does).
        """
        evaluation = self.explain(flag)
        if evaluation is None:
            return default
        return self.value_of(self._state.config_map[flag], evaluation.variant)

    def value_of(self, config: FeatureFlagConfig, variant: str) -> Any:
        """`variant`'s value: stored at runtime when that value still has the flag's type, else the code's."""
        stored = self._values.get(config._rollout_flag)
        if stored is not None and variant in stored:
            value = stored[variant]
            if VALUE_TYPES.get(type(value)) == config.value_type:  # else stale: the type changed in code
                return value
        return config.values[variant]

    @property
    def context(self) -> Mapping[str, Any]:
        """Who the flags are for, as attributes: ``key`` (the user id as text, None when anonymous), what
        the context loader reads from the user, and what the app added (`add_context`). Built once."""
        return self._context if self._context is not None else self._build_context()

    def _build_context(self) -> Mapping[str, Any]:
        # Fields, not the properties: a property's getter is a call from C (this runs on a flag's path).
        user_id = self._user_id if self._user_id is not _MISSING else self._load_user_id()
        user = None
        if user_id is not None:
            if self.request is not None:  # `_user_for(user_id)` for the request's own user, inlined
                user = self._user if self._user is not _MISSING else self._load_user()
            else:
                user = self._user_for(user_id)
        context: dict[str, Any] = {"key": None if user_id is None else str(user_id)}
        if user is not None:
            try:
                context.update(self._state.context_loader(user))
            except Exception as error:  # a broken loader: rules see the key alone (logged once)
                self._state.warn_once(("context", type(error)), "gatekeeper: context_loader raised %r", error)
        context.update(self._extra_context or {})
        built = self._context = MappingProxyType(context)
        return built

    def _context_for(self, user_id: Any) -> Mapping[str, Any]:
        """The context of `user_id`: this Gatekeeper's own, or (explaining another user) the key alone."""
        own = self._user_id if self._user_id is not _MISSING else self._load_user_id()
        if user_id != own:
            return _given_context(user_id, {})
        return self._context if self._context is not None else self._build_context()

    def add_context(self, **attributes: Any) -> None:
        """Add request attributes to the evaluation context (e.g. ``country="FR"`` in a before-request
        hook); they apply to the flags not yet evaluated in this request."""
        self._extra_context = {**(self._extra_context or {}), **attributes}
        if self._context is not None:
            self._context = MappingProxyType({**self._context, **attributes})

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

    def bootstrap(self) -> Any:
        """`gk.bootstrap()` in a template: this user's CLIENT_SIDE flags as a JSON data element for the
        browser client, rendered by what the app registered as ``app.extensions["gatekeeper_bootstrap"]``
        (gatekeeper_control's OFREP server does)."""
        render = self.app.extensions.get("gatekeeper_bootstrap")
        if render is None:
            raise RuntimeError("gk.bootstrap() needs gatekeeper_control.init_app(app, ...): its OFREP server")
        return render(self)

    # -- explanations -----------------------------------------------------------------------------

    def explain(self, flag: str, user_id_override: Any = None) -> Evaluation | None:
        """The variant `flag` gives and the reason; None for an unknown flag in production."""
        config = self._config(flag)
        if config is None:
            return None
        if user_id_override is not None:
            return self._evaluate(flag, config, user_id_override)[_EVALUATION]
        return self.ff(flag, _EVALUATION)  # type: ignore[return-value]  # (the Evaluation: see ff)

    def explain_in_detail(self, flag: str, user_id_override: Any = None) -> Evaluation | None:
        """`explain()`, and when the rule's rollout gave the variant, the detail says how: "bucket 4,213 of
        10,000: ON covers 0-999" (the user's bucket, and the range of the 10,000 buckets the variant owns).
        For pages and commands that show a reason; a flag check never pays for it."""
        evaluation = self.explain(flag, user_id_override)
        if evaluation is None or evaluation.reason != RULE or evaluation.detail:
            return evaluation
        config = self._state.config_map[flag]
        stored = (self._weights or {}).get(flag)
        weights = stored if stored is not None and stored.keys() <= config._names else config.ROLLOUT
        unit = user_id_override if user_id_override is not None else self.user_id
        if unit is None and self.request is not None:
            unit = anonymous_id()
        if not weights or unit is None:
            return evaluation
        bucket = rollout_bucket(f"{config._rollout_prefix}{unit}")
        share = rollout_share(bucket, weights)
        if share is None or share[0] != evaluation.variant:  # the rule chose otherwise than this rollout
            return evaluation
        variant, first, last = share
        detail = f"bucket {bucket:,} of {ROLLOUT_BUCKETS:,}: {variant} covers {first:,}-{last:,}"
        return evaluation._replace(detail=detail)

    def evaluations(self) -> list[Evaluation]:
        """The evaluations this Gatekeeper has made, one per flag asked (in a request: the request's)."""
        return list(map(_evaluation_of, self._flags.values()))  # (C's loop: at every request's end)

    # -- internals --------------------------------------------------------------------------------

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
        """Walk the evaluation order for one flag and one user; return the flag's answer table.

        Steps 1 to 4 are EVALUATION_STEPS, skipped when nothing can override the rule; then 5, the rule, with
        the flag's stored weights for `rollout()`, and 6, the default when the rule fails. (One method: a
        call more per flag costs as much as a tenth of a first check.)
        """
        overrides = self._overrides if self._overrides is not None else self._load_overrides()
        # Only a flag something stored names (`_touched`) can be answered by a stored step; code overrides
        # and prerequisites are the config's own.
        if (overrides and flag in self._touched) or config._code_overrides or config._prerequisites:
            stored, steps = (overrides, self._steps) if overrides else (_NOTHING_STORED, EVALUATION_STEPS)
            for step in steps:
                evaluation = step(self, flag, config, user_id, *stored)
                if evaluation is not None:
                    return config._answers(evaluation)
        # `rollout()` finds this Gatekeeper's stored weights through the context variable: set once for the
        # whole request by the request's own Gatekeeper, else here around each rule when there are any
        # (setting one costs as much as the rest of an on-for-all flag's evaluation).
        token = _rule_gatekeeper.set(self) if self._weights and not self._rules_see_weights else None
        try:
            if config._context_rule:
                result = config._get_variant(
                    user_id=user_id,
                    app=self.app,
                    request=self.request,
                    session=self.session,
                    context=self._context_for(user_id),
                )
            elif config._positional_rule:
                result = config._get_variant(user_id, self.app, self.request, self.session)
            else:
                result = config._get_variant(
                    user_id=user_id, app=self.app, request=self.request, session=self.session
                )
        except Exception as error:
            return _rule_raised(flag, config, error)
        finally:
            if token is not None:
                _rule_gatekeeper.reset(token)
        answers = config._rule_answers_by_member.get(id(result))  # a member of the flag's enum
        return answers if answers is not None else _rule_result(flag, config, result)

    def _load_overrides(self) -> tuple[Any, ...]:
        """Fetch, once per Gatekeeper, everything that can override a rule; () when nothing can."""
        state = self._state
        snapshot: Any = _EMPTY_SNAPSHOT
        if state.store is not None:
            try:
                snapshot = state.store.snapshot()
            except Exception as error:
                # The store should never raise here; if it does, flags still answer from code rules.
                state.warn_once(("store", type(error)), "gatekeeper: the store failed (%r), ignored", error)
            if not hasattr(snapshot, "disabled"):
                snapshot = _adapt_snapshot(snapshot)
        request = self.request
        browser = None
        if request is not None:  # (without one, `_request_cookies` stays the None __init__ set)
            cookies = request.__dict__.get("cookies")  # _cookies(request), inlined
            if cookies is None:
                cookies = request.cookies
            self._request_cookies = cookies
            if OVERRIDE_COOKIE in cookies:
                browser = read_browser_overrides(request, gatekeeper=self)
            if request.__dict__.get("gk") is self:  # the request's own, at its first flag
                if snapshot.weights:  # every rule of the request finds them (cleared by the request's close)
                    _rule_gatekeeper.set(self)
                    self._rules_see_weights = True
                if state.responses:
                    watched = getattr(snapshot, "watched", None)
                    if watched is None:  # a store that does not say: every flag
                        _watch_response(state.responses, self)
                    else:  # only the flags it names (gatekeeper_control: those a release runs on)
                        self._watched = watched
        self._weights = snapshot.weights
        self._values = snapshot.values
        if (
            state.pinned
            or browser
            or snapshot.forced
            or snapshot.user_overrides
            or snapshot.group_targets
            or snapshot.disabled
            or snapshot.prerequisites
        ):
            self._overrides = (state.pinned, browser or {}, snapshot)
            self._steps = state.steps_for(snapshot, bool(state.pinned or browser))
            touched = state.stored_flags(snapshot)
            if state.pinned or browser:
                touched = touched.union(state.pinned, browser or ())
            self._touched = touched
        else:
            self._overrides = ()
        return self._overrides

    # Methods, not the properties: a property's getter is a call from C, several times a Python call's cost.
    def _load_user(self) -> Any:
        self._user = self._state.user_loader() if self.request is not None else None
        return self._user

    def _load_user_id(self) -> Any:
        user = self._user
        if user is _MISSING:  # self._load_user(), inlined: the first flag check of every request comes here
            user = self._user = self._state.user_loader() if self.request is not None else None
        if user is None:
            user_id = None
        elif _id_in_dict(type(user)):  # `_user_id_of`'s usual case, inlined (a model with a loaded id)
            user_id = user.__dict__.get("id", _MISSING)
            if user_id is _MISSING:
                user_id = _user_id_of(user, self._state, self.app)
        else:
            user_id = _user_id_of(user, self._state, self.app)
        self._user_id = user_id
        return user_id

    def _user_for(self, user_id: Any) -> Any:
        """The user object a code group is asked about: the logged-in one, or looked up by id."""
        if self.request is not None and user_id == self.user_id:
            return self.user
        try:
            return self._state.user_by_id(user_id)
        except Exception as error:
            self._state.warn_once(("user_by_id", type(error)), "gatekeeper: user_by_id failed (%r)", error)
            return None

    def _get_anonymous_id(self) -> str:
        """This visitor's long-lived random id, set as a cookie the first time a rollout needs it."""
        if self._anonymous_id is None:
            value = anonymous_cookie_id(self.request) if self.request is not None else None
            if value is not None:
                self._anonymous_id = value
            else:
                self._anonymous_id = secrets.token_hex(16)
                after_this_request(functools.partial(_set_anonymous_cookie, self._anonymous_id))
        return self._anonymous_id


def _rule_raised(flag: str, config: FeatureFlagConfig, error: Exception) -> dict[Any, Any]:
    """A rule that raised: the default, logged with the traceback (called inside the `except`)."""
    log.exception("gatekeeper: the rule of %s raised; serving %s", flag, config.default_variant)
    return config._answers(
        Evaluation(flag, config.default_variant, DEFAULT, f"rule raised {type(error).__name__}")
    )


def _rule_result(flag: str, config: FeatureFlagConfig, result: Any) -> dict[Any, Any]:
    """The answers for what a rule returned, other than one of its enum's members: None is no match (the
    default, a normal outcome), a variant's name is that variant, anything else is logged (the default)."""
    if result is None:
        return config._default_answers
    name = config._variant_name(result)
    if name is None:
        log.error(
            "gatekeeper: the rule of %s returned %r, not a variant; serving %s",
            flag,
            result,
            config.default_variant,
        )
        return config._answers(Evaluation(flag, config.default_variant, DEFAULT, f"rule returned {result!r}"))
    return config._rule_answers[name]


def anonymous_cookie_id(request: Request) -> str | None:
    """The visitor's `gk_anon` cookie when it holds an id this module could have set (32 lowercase hex
    digits), else None. The one check of that cookie: whatever reads it (rollouts, exposures) goes through
    here, so a visitor's own cookie can never bring a long or odd string into a bucket or a database row."""
    value = cookie_value(request, ANONYMOUS_COOKIE)
    return value if value is not None and _ANONYMOUS_ID.fullmatch(value) else None  # (valid_anonymous_id)


def valid_anonymous_id(value: str | None) -> str | None:
    """`value` when it is an anonymous id this module could have set (32 lowercase hex digits), else None."""
    return value if value is not None and _ANONYMOUS_ID.fullmatch(value) else None


def cookie_value(request: Request, name: str) -> str | None:
    """A cookie's value, or None. Use it on a request's hot path instead of `request.cookies.get()`, which
    builds (and discards) an HTTP exception for every missing cookie: more than a whole flag check costs."""
    return cookie_in(_cookies(request), name)


def cookie_in(cookies: Mapping[str, str], name: str) -> str | None:
    """A cookie's value in a request's parsed cookies (`request.cookies`, `Gatekeeper.request_cookies`), or
    None; as `cookie_value`, without the request."""
    if type(cookies) is ImmutableMultiDict:  # Werkzeug's, a dict of lists: its __getitem__ is a Python call
        values = dict.get(cookies, name)
        return values[0] if values else None
    return cookies[name] if name in cookies else None  # noqa: SIM401 (see above)


def _cookies(request: Request) -> Mapping[str, str]:
    """`request.cookies`, parsed once per request by Werkzeug's cached_property, which keeps the value in the
    request's `__dict__`; read there, since the property's own getter runs in Python on every access."""
    cookies = request.__dict__.get("cookies")
    return cookies if cookies is not None else request.cookies


# -- the evaluation steps ---------------------------------------------------------------------------
# One question each, asked in this order for one flag and one user; the first to answer wins. Each gets
# (gatekeeper, flag, config, user_id, pinned, browser overrides, store snapshot) and returns an Evaluation,
# or None to pass. A stored choice naming a variant the flag no longer has is stale: passed over, never an
# error. After them come the rule and the default (Gatekeeper._evaluate).


def _pinned_in_tests(gk: Gatekeeper, flag: str, config: Any, user_id: Any, pinned: Any, *_: Any) -> Any:
    """`forced_variant()` in a test holds whatever cookie or store it meets."""
    name = pinned.get(flag)
    return Evaluation(flag, name, FORCED, "forced_variant() in code") if name is not None else None


def _browser_override(
    gk: Gatekeeper, flag: str, config: Any, user_id: Any, _: Any, browser: Any, *__: Any
) -> Any:
    """1. The signed override cookie (already checked: only users allowed to override have one)."""
    name = browser.get(flag)
    return Evaluation(flag, name, BROWSER_OVERRIDE, "your override cookie") if name is not None else None


def _disabled(gk: Gatekeeper, flag: str, config: Any, user_id: Any, _: Any, __: Any, snapshot: Any) -> Any:
    """2a. The flag is switched off (dashboard, `flask gk off`): everyone gets its default."""
    if flag in snapshot.disabled:
        return Evaluation(flag, config.default_variant, DISABLED, "switched off")
    return None


def _forced(gk: Gatekeeper, flag: str, config: Any, user_id: Any, _: Any, __: Any, snapshot: Any) -> Any:
    """2b. A variant forced for everyone from the dashboard or `flask gk force`."""
    name = snapshot.forced.get(flag)
    if name is not None and name in config._names:
        return Evaluation(flag, name, FORCED, "forced for everyone")
    return None


def _code_prerequisites(gk: Gatekeeper, flag: str, config: Any, user_id: Any, *_: Any) -> Any:
    """2c. PREREQUISITES in code: each required flag must give this user the required variant."""
    return _unmet(gk, flag, config, user_id, config._prerequisites) if config._prerequisites else None


def _stored_prerequisites(
    gk: Gatekeeper, flag: str, config: Any, user_id: Any, _: Any, __: Any, snapshot: Any
) -> Any:
    """2d. Prerequisites stored at runtime (one naming a flag or variant that is gone is stale: skipped)."""
    required = snapshot.prerequisites.get(flag)
    return _unmet(gk, flag, config, user_id, required) if required else None


def _unmet(gk: Gatekeeper, flag: str, config: Any, user_id: Any, required: Any) -> Evaluation | None:
    """The default, with the chain in the detail, when `user_id` does not get a required variant."""
    config_map = gk._state.config_map
    for other, variant in required:
        other_config = config_map.get(other)
        if other_config is None or variant not in other_config._names:
            continue  # stale
        resolving = gk._resolving if gk._resolving is not None else set()
        if (other, user_id) in resolving:  # a circle (a deploy met a stored prerequisite): unmet
            return Evaluation(
                flag, config.default_variant, PREREQUISITE, f"needs {other} = {variant} (a circle)"
            )
        gk._resolving = resolving
        resolving.add((flag, user_id))
        try:
            if user_id == gk.user_id and other not in gk._flags:
                got = gk.ff(other, _EVALUATION)
            else:
                got = gk._flags[other][_EVALUATION] if user_id == gk.user_id else None
                got = got or gk._evaluate(other, other_config, user_id)[_EVALUATION]
        finally:
            resolving.discard((flag, user_id))
        if got.variant != variant:
            why = f"{got.reason}" + (f": {got.detail}" if got.detail else "")
            detail = f"needs {other} = {variant}, which gives {got.variant} ({why})"
            return Evaluation(flag, config.default_variant, PREREQUISITE, detail)
    return None


def _stored_user_override(
    gk: Gatekeeper, flag: str, config: Any, user_id: Any, _: Any, __: Any, snapshot: Any
) -> Any:
    """3a. A per-user override stored from the dashboard or `flask gk override`."""
    stored = snapshot.user_overrides.get(flag) if user_id is not None else None
    name = stored.get(str(user_id)) if stored else None
    if name is not None and name in config._names:
        return Evaluation(flag, name, USER_OVERRIDE, f"stored override for user {user_id}")
    return None


def _code_user_override(gk: Gatekeeper, flag: str, config: Any, user_id: Any, *_: Any) -> Any:
    """3b. ``overrides={...}`` given to the config in code."""
    name = config._code_overrides.get(str(user_id)) if user_id is not None else None
    if name is not None:
        return Evaluation(flag, name, USER_OVERRIDE, f"overrides in code for user {user_id}")
    return None


def _group_target(
    gk: Gatekeeper, flag: str, config: Any, user_id: Any, _: Any, __: Any, snapshot: Any
) -> Any:
    """4. The user is in a group the flag targets: a stored group (a set lookup), one defined in code, or a
    segment whose conditions the evaluation context meets (anonymous visitors too)."""
    targets = snapshot.group_targets.get(flag)
    if not targets:
        return None
    member_of = snapshot.memberships.get(str(user_id), ()) if user_id is not None else ()
    for group, variant in targets:  # in the order the targets were added: the first match wins
        split = None
        if variant not in config._names:
            split = snapshot.target_splits.get((flag, group))
            if split is None or not split.keys() <= config._names:
                continue  # stale: a variant left the code
        if group in member_of:
            why = f"member of group {group}"
        elif (segment := snapshot.segments.get(group)) is not None:
            if not segment.matches(gk._context_for(user_id)):
                continue
            why = f"in segment {group}"
        elif (code_group := gk._state.groups.get(group) if user_id is not None else None) is not None and (
            _in_code_group(gk, code_group, user_id)
        ):
            why = f"in group {group} (defined in code)"
        else:
            continue
        if split is not None:
            variant = _split_variant(flag, group, split, user_id)
            if variant is None:
                continue
            why += f", {variant} of its split"
        return Evaluation(flag, variant, GROUP_TARGET, why)
    return None


def _split_variant(flag: str, group: str, split: Mapping[str, float], user_id: Any) -> str | None:
    """The variant a target's split gives this user (or visitor), sticky: the bucket of
    ``"FLAG:GROUP:UNIT"``, as `rollout()` buckets ``"FLAG:SALT:UNIT"`` (never change it: users would move).
    None for an anonymous visitor outside a request (no unit to bucket)."""
    if user_id is None:
        if _current_request() is None:
            return None
        user_id = anonymous_id()
    point = rollout_bucket(f"{flag}:{group}:{user_id}") / (ROLLOUT_BUCKETS // 100)
    total, chosen = 0.0, None
    for variant, weight in split.items():
        total += weight
        if point < total:
            return variant
        chosen = variant
    return chosen


EVALUATION_STEPS: tuple[Callable[..., Evaluation | None], ...] = (
    _pinned_in_tests,
    _browser_override,
    _disabled,
    _forced,
    _code_prerequisites,
    _stored_prerequisites,
    _stored_user_override,
    _code_user_override,
    _group_target,
)


def group_target_of(gk: Gatekeeper, flag: str, user_id: Any, snapshot: Any) -> Evaluation | None:
    """What the group-target step alone gives `user_id` for `flag` in `snapshot` (None: no target applies),
    for pages that show every step, such as the dashboard's "who sees what"."""
    config = gk.config_map.get(flag)
    return None if config is None else _group_target(gk, flag, config, user_id, None, None, snapshot)


def _in_code_group(gk: Gatekeeper, group: CodeGroup, user_id: Any) -> bool:
    """Ask a code group's predicate; one that raises counts as "not a member" (logged once)."""
    user = gk._user_for(user_id)
    if user is None:
        return False
    try:
        return bool(group.predicate(user))
    except Exception as error:
        gk._state.warn_once(("group", group.name), "gatekeeper: group %s raised %r", group.name, error)
        return False


def _adapt_snapshot(snapshot: Any) -> _Snapshot:
    """A store's snapshot that lacks some fields (e.g. only forced and user overrides), the rest empty."""
    adapted = _Snapshot()
    for name in (
        "forced",
        "user_overrides",
        "weights",
        "group_targets",
        "memberships",
        "disabled",
        "values",
        "segments",
        "prerequisites",
        "target_splits",
    ):
        setattr(adapted, name, getattr(snapshot, name, None) or getattr(adapted, name))
    adapted.watched = getattr(snapshot, "watched", None)  # (an empty set is not None: it watches nothing)
    return adapted


def _given_context(user_id: Any, attributes: Mapping[str, Any]) -> Mapping[str, Any]:
    """A context given whole (OpenFeature's for one call, or `explain` for another user): the key first."""
    return MappingProxyType({"key": None if user_id is None else str(user_id), **attributes})


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


class _RequestGatekeeper:
    """`request.gk` on the request class `init_app` gives the app: the request's Gatekeeper, made on first
    use and then kept in the request's `__dict__`, where Python finds it before this (non-data) descriptor.
    Assigning `request.gk` (as the seed's own before-request hook does) replaces it."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    def __get__(self, request: Any, owner: Any = None) -> Any:
        if request is None:
            return self
        app = self.app
        state = app.extensions.get("gatekeeper")
        if state is None:  # pragma: no cover - init_app sets it before it derives this class
            gk = Gatekeeper(None, app, request, flask_session)
        else:
            # Gatekeeper(None, app, request, flask_session), without the class call: CPython 3.11 reaches a
            # Python __init__ through several C calls, which cost as much as the fields set here.
            gk = _new_object(Gatekeeper)
            gk.app = app
            gk.request = request
            gk.session = flask_session
            gk._state = state
            gk._user_id = gk._user = _MISSING
            gk._flags = {}
            gk._overrides = gk._context = gk._extra_context = gk._resolving = gk._anonymous_id = None
            gk._weights = gk._values = _NO_WEIGHTS
            gk._steps = EVALUATION_STEPS
            gk._touched = gk._watched = _NO_FLAGS
            gk._rules_see_weights = False
        request.__dict__["gk"] = gk
        return gk


REQUEST_END_KEY = "gatekeeper_request_end"  # app.extensions[...]: what on_request_end registered


def on_request_end(app: Flask, function: Callable[[Gatekeeper, Request], None]) -> None:
    """Call `function(gk, request)` when a request of `app` that evaluated a flag ends (after its
    teardown functions, in its app context), with `request.gk`; a request that asked no flag calls nothing.
    What it raises is logged, never the request's failure. (gatekeeper_control counts exposures here.)
    Works before or after `init_app`."""
    app.extensions.setdefault(REQUEST_END_KEY, []).append(function)


RESPONSE_KEY = "gatekeeper_response"  # app.extensions[...]: what on_response registered


def on_response(app: Flask, function: Callable[[Gatekeeper, Response, float], None]) -> None:
    """Call `function(gk, response, started)` with the response of each request of `app` whose own
    `request.gk` evaluated a flag, before the app's `after_request` functions (Flask's `after_this_request`,
    registered at the request's first flag); `started` is `time.perf_counter()` at that first flag. When the
    store's snapshot has a `watched` set, only requests that evaluated one of those flags are handed over,
    and `started` is taken at the first of them. A request that asks no such flag runs nothing of this. An
    exception that escapes Flask (debug and testing propagate them) leaves no response to hand over. What
    `function` raises is logged, never the request's failure. (gatekeeper_control counts request outcomes
    here, for the flags a release is under way on.) Works before or after `init_app`."""
    app.extensions.setdefault(RESPONSE_KEY, []).append(function)


EVALUATED_KEY = "gatekeeper_evaluated"  # app.extensions[...]: what on_evaluation registered


def on_evaluation(app: Flask, function: Callable[[Gatekeeper, Evaluation], None]) -> None:
    """Call `function(gk, evaluation)` each time a Gatekeeper of `app` evaluates a flag: once per flag per
    Gatekeeper (a request's later checks of the flag are memoised), in a request or outside one, before
    `ff()` answers. What it raises is logged, never the check's failure. A direct call, where a receiver of
    the `flag_evaluated` signal costs each evaluation blinker's look-up of its receivers and its check
    that each is not a coroutine function, tens of thousands of instructions: the folder's OpenTelemetry
    events come through here. Works before or after `init_app`; registering a function twice counts once."""
    functions = app.extensions.setdefault(EVALUATED_KEY, [])
    if function not in functions:
        functions.append(function)


def _announce(
    functions: list[Callable[[Gatekeeper, Evaluation], None]], gk: Gatekeeper, evaluation: Evaluation
) -> None:
    for function in functions:
        try:
            function(gk, evaluation)
        except Exception:  # never the check's failure
            log.exception("gatekeeper: %r failed on the evaluation of %s", function, evaluation.flag)


def _watch_response(functions: list[Callable[[Gatekeeper, Response, float], None]], gk: Gatekeeper) -> None:
    started = time.perf_counter()

    def responded(response: Response) -> Response:  # a function, not a partial: Flask's coroutine check
        for function in functions:  # on a partial unwraps it first
            try:
                function(gk, response, started)
            except Exception:  # never the request's failure
                log.exception("gatekeeper: %r failed on a response", function)
        return response

    # Not `contextlib.suppress`: three Python calls more on every request that asks a flag.
    try:  # noqa: SIM105
        after_this_request(responded)
    except RuntimeError:  # not in the request's context (a request object made by hand): no response
        pass


def _request_class(app: Flask, base: type[Request]) -> type[Request]:
    """`base` with `request.gk` (made on first use) and a `close()` that runs the `on_request_end` functions
    for a request that asked a flag. Flask closes every request once it is done with it; unlike a teardown
    hook, which Flask calls (and checks for a coroutine) on every request, this costs a page that asks no
    flag one dictionary look-up."""
    base_close = getattr(base, "close", None)
    ends = app.extensions.setdefault(REQUEST_END_KEY, [])

    class GatekeeperRequest(base):  # type: ignore[misc,valid-type]
        gk = _RequestGatekeeper(app)

        def close(self) -> None:
            # Taken out of the request: a Gatekeeper refers to its request, and the cycle would leave both
            # (and the request's environ) to the garbage collector instead of freeing them here.
            gk = self.__dict__.pop("gk", None)
            if gk is not None:
                if getattr(gk, "_rules_see_weights", False):
                    _rule_gatekeeper.set(None)  # set for its rules (see Gatekeeper._load_overrides)
                if ends and getattr(gk, "_flags", None):
                    for function in ends:  # (a loop here, not a function: a call less per request)
                        try:
                            function(gk, self)
                        except Exception:  # never the request's failure
                            log.exception("gatekeeper: %r failed at the end of a request", function)
            if base_close is not None:
                base_close(self)

    GatekeeperRequest.__name__ = GatekeeperRequest.__qualname__ = base.__name__
    return GatekeeperRequest


def current_gatekeeper() -> Gatekeeper:
    """The request's Gatekeeper (`request.gk`), or one for no user outside a request."""
    request = _current_request()
    if request is not None:
        gk = getattr(request, "gk", None)
        if gk is None:
            gk = request.gk = Gatekeeper(
                app=current_app._get_current_object(), request=request, session=flask_session
            )
        return gk
    return Gatekeeper()


def anonymous_id() -> str:
    """The current visitor's anonymous id; needs a request."""
    request = _current_request()
    if request is None:
        raise ValueError("no unit id: pass a user id to rollout() outside a request")
    gk = getattr(request, "gk", None)  # made on first use; not in a request of an app without init_app
    if gk is None:
        gk = current_gatekeeper()
    return gk._anonymous_id or gk._get_anonymous_id()


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
    raw = cookie_value(request, OVERRIDE_COOKIE)
    if not raw or len(raw) > OVERRIDE_COOKIE_MAX_LENGTH:
        return {}
    gk = gatekeeper if gatekeeper is not None else current_gatekeeper()
    state = gk._state
    if check_permission and not state.can_override(gk.user):
        return {}
    try:
        data = _signer(gk.app).loads(raw)
    except (BadData, ValueError, TypeError):  # a bad signature, or a good one on a payload of another shape
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
    can_manage: Callable[[Any], bool] | None = None,
    user_loader: Callable[[], Any] | None = None,
    groups: Iterable[CodeGroup] = (),
    user_by_id: Callable[[Any], Any] | None = None,
    context_loader: Callable[[Any], Mapping[str, Any]] | None = None,
) -> GatekeeperState:
    """Validate the flags and wire them into `app`: `request.gk`, Jinja `ff`/`gk`, `flask gk`.

    `store` supplies runtime overrides (any object with `snapshot()`). The hooks, each optional:
    `user_loader()` returns the logged-in user: an object with `id`, a mapping or row with "id", a plain
    id, or None (default: Flask-Login's current user when the app has a LoginManager, else None);
    `can_override(user)` decides who may use browser overrides (default: admins, everyone in debug);
    `can_manage(user)` decides who may open the dashboard (default: a true `is_admin`). Both get what
    `user_loader` returned, for a signed-in user. `groups` are code-defined groups
    (`CodeGroup(name, predicate, description)`, or later `register_group`), whose predicate gets a user
    object: outside a request `user_by_id(id)` finds it (default: Flask-Login's loader).
    `context_loader(user)` returns the attributes rules and segments see for a user (default: those the
    `GATEKEEPER_CONTEXT_ATTRIBUTES` setting names, email and is_admin unless set).
    """
    validate_config_map(config_map)
    state = GatekeeperState(
        config_map,
        store=store,
        can_override=can_override,
        user_loader=user_loader,
        can_manage=can_manage,
        user_by_id=user_by_id,
        context_loader=context_loader,
        context_attributes=app.config.get("GATEKEEPER_CONTEXT_ATTRIBUTES", DEFAULT_CONTEXT_ATTRIBUTES),
    )
    for group in groups:
        state.register_group(*group)
    state.responses = app.extensions.setdefault(RESPONSE_KEY, [])  # on_response's, before or after this
    state.evaluated = app.extensions.setdefault(EVALUATED_KEY, [])  # on_evaluation's, likewise
    app.extensions["gatekeeper"] = state
    # `request.gk` is built the first time a request asks for it: a request that checks no flag runs no
    # gatekeeper code at all (a before-request hook would cost every request its call, flag or not).
    if not isinstance(app.request_class.__dict__.get("gk"), _RequestGatekeeper):
        app.request_class = _request_class(app, app.request_class)
    app.jinja_env.globals["ff"] = _template_ff
    app.jinja_env.globals["gk"] = LocalProxy(current_gatekeeper)
    app.cli.add_command(cli)
    return state


def register_group(
    name: str, predicate: Callable[[Any], bool], description: str = "", *, app: Flask | None = None
) -> None:
    """Define group `name` in code for `app` (default: the current one), e.g. every admin:
    ``register_group("admins", lambda user: user.is_admin, "Everyone who can open the dashboard")``."""
    get_state(app).register_group(name, predicate, description)


def _template_ff(flag: str, variant: str) -> bool:
    return current_gatekeeper().ff(flag, variant)


F = TypeVar("F", bound=Callable[..., Any])


def track(metric: str, value: float = 1.0) -> None:
    """Count `value` of `metric` (e.g. "checkout_completed") against the variants this request is served:
    a guarded release can guard it. Kept on the request (its `__dict__["gatekeeper_tracked"]`) until it
    ends; outside a request, nothing."""
    if not isinstance(metric, str) or not 0 < len(metric) <= 90 or "#" in metric:
        raise ValueError(f"track(): {metric!r} is not a metric name (text, 1 to 90 characters, no '#')")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"track({metric!r}): the value must be a finite number, not {value!r}")
    if has_request_context():
        request = flask_request._get_current_object()
        request.__dict__.setdefault("gatekeeper_tracked", []).append((metric, value))


def flag_required(flag: str, variant: str) -> Callable[[F], F]:
    """Serve the view only to users who get `variant` of `flag`; everyone else gets a 404. Works on sync and
    `async def` views alike (an async view stays a coroutine function, so Flask still awaits it)."""

    def decorator(view: F) -> F:
        if inspect.iscoroutinefunction(view):

            @functools.wraps(view)
            async def awaited(*args: Any, **kwargs: Any) -> Any:
                if not current_gatekeeper().ff(flag, variant):
                    abort(404)
                return await view(*args, **kwargs)

            return awaited  # type: ignore[return-value]

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
@click.option("--user", "user_id", default=None, help="A user id or email; without it, an anonymous user.")
@with_appcontext
def explain_command(flag: str, user_id: Any) -> None:
    """Show the variant FLAG gives a user, and why."""
    state = get_state()
    if flag not in state.config_map:
        raise click.BadParameter(
            f"unknown flag; known flags: {', '.join(sorted(state.config_map))}", param_hint="FLAG"
        )
    lookup = getattr(state.store, "lookup_user", None)
    # Without the app's user_lookup (no store, or a store given none) the text cannot be checked.
    checked = lookup is not None and getattr(state.store, "checks_users", True)
    user_text = user_id
    if user_id is not None and checked:
        found = lookup(user_id)  # an email or id, through the store's user_lookup
        if found is None and not user_id.isdigit():
            raise click.BadParameter(f"no user matches {user_id!r}", param_hint="--user")
        user_id = found.id if found is not None else user_id
    if user_id is None:
        evaluation = _explain_for_a_new_visitor(flag)
    else:
        gk = Gatekeeper(user_id=int(user_id) if str(user_id).isdigit() else user_id)
        evaluation = gk.explain_in_detail(flag)
    assert evaluation is not None
    detail = f" ({evaluation.detail})" if evaluation.detail else ""
    click.echo(f"{flag} = {evaluation.variant}  because: {evaluation.reason}{detail}")
    if user_id is None:
        click.echo("  for an anonymous visitor with a new anonymous id; pass --user ID to ask about a user")
    elif not checked:
        click.echo(
            f"  {user_text!r} was taken as an unchecked user id: this app gives gatekeeper no user_lookup, "
            "so an email or a name is not looked up"
        )


def _explain_for_a_new_visitor(flag: str) -> Evaluation | None:
    """What `flag` gives a first-time anonymous visitor: a request of our own with no cookies, so that a
    rollout buckets a fresh anonymous id; the app's user hook is not asked (there is nobody to ask about)."""
    with current_app.test_request_context():
        request = flask_request._get_current_object()
        gk = request.gk = Gatekeeper(None, current_app._get_current_object(), request, flask_session)
        gk._user = gk._user_id = None
        return gk.explain_in_detail(flag)
