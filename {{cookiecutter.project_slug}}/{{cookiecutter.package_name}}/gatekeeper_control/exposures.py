"""Exposures: which variant of each flag was served, per hour, and how many distinct units got each variant.

Its two tables (`gatekeeper_exposures`, `gatekeeper_exposure_units`) are in the store's metadata (tables.py).

Recording never touches the database on the request path. When a request that asked a flag ends (the engine's
`on_request_end`: a request that asked none runs nothing of this module), the request's evaluations, exactly
what `flag_evaluated` announces (one per flag asked), are left in a queue as one tuple of what the request
already holds (the time, its URL rule, its user id, its anonymous id or cookies, `request.gk`'s answers), with
no lock; whoever reads the buffer next (the writer, the flag page, exit) works out each entry's unit and
evaluations, leaves the dashboard's out, and counts the queue under one lock, by C's counting loop: per hour,
the count of each `Evaluation` (the engine's own objects, shared between requests), and per day and unit the
evaluations; the writer turns them into rows (a unit's row only for what the rule decided). (Connecting a
receiver to the signal instead would cost every flag of every request a blinker send, ~3 µs; evaluations
outside requests, in jobs, are counted when `recorder.record` is connected to `flag_evaluated`.) A background
thread writes the buffer every `GATEKEEPER_EXPOSURES_FLUSH` seconds (sooner when it fills); the dashboard
writes this process's pending entries before it reads, so they show at once; and whatever is left is written
when the process exits. The buffer is bounded (`MAX_PENDING` requests queued, and as many entries counted):
past it, new entries are dropped and counted, never blocking a request. A failed write keeps the entries for
the next one.

The dashboard's own evaluations (what an admin gets) are not exposures. Units: the user id, or for
visitors the anonymous id of the `gk_anon` cookie; only evaluations the flag's rule decided count towards
units (a forced or overridden variant says nothing about the split). The flag page compares each variant's
share of the last `UNIT_WINDOW_DAYS` days' distinct units with the weights its rule runs on (those set at
runtime, else the class's `ROLLOUT`) and warns of a sample-ratio mismatch when a chi-square test gives
p < 0.001.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from flask import Flask, current_app, has_app_context, has_request_context
from sqlalchemy import Engine, Integer, String, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Mapped, Session, mapped_column

from . import forks
from .engine import gatekeeper
from .exposure_report import ExposureReport, rollout_weights, split_of_units
from .tables import Base

try:  # C's loop behind Counter.update(): counts an iterable's items into a dict
    from collections import _count_elements  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - every CPython has it

    def _count_elements(mapping: dict[Any, int], iterable: Iterable[Any]) -> None:
        for item in iterable:
            mapping[item] = mapping.get(item, 0) + 1


log = logging.getLogger(__name__)

MAX_PENDING = 50_000  # buffered (count + unit) entries per process before new ones are dropped
EXIT_ATTEMPTS = 3  # writes of what is left when the process exits, a moment apart, before it is given up
FLUSH_SOON = 5_000  # wake the writer early once this many entries wait
CHART_HOURS = 24
UNIT_WINDOW_DAYS = 7
RETENTION_DAYS = 35  # rows older than this are deleted, at most once an hour
# Flags the dashboard evaluates to show an admin what they get are not exposures to the feature.
DASHBOARD_BLUEPRINT = "gatekeeper"
_ANONYMOUS_PREFIX = "anon:"
# The columns' size. A unit longer than this (or holding a NUL, which PostgreSQL refuses) is never buffered,
# so it can neither grow a table nor fail the write of everyone else's exposures; should the database still
# refuse a row, the writer drops that row alone (`_write_one_by_one`).
COLUMN_LENGTH = 200


class ExposureCount(Base):
    """How often `variant` of `flag` was served in one hour (hours since the Unix epoch, UTC)."""

    __tablename__ = "gatekeeper_exposures"

    flag: Mapped[str] = mapped_column(String(COLUMN_LENGTH), primary_key=True)
    variant: Mapped[str] = mapped_column(String(COLUMN_LENGTH), primary_key=True)
    hour: Mapped[int] = mapped_column(Integer, primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)


class ExposureUnit(Base):
    """One unit (user or visitor) that the rule gave `variant` of `flag` on one day (days since the epoch)."""

    __tablename__ = "gatekeeper_exposure_units"

    flag: Mapped[str] = mapped_column(String(COLUMN_LENGTH), primary_key=True)
    variant: Mapped[str] = mapped_column(String(COLUMN_LENGTH), primary_key=True)
    day: Mapped[int] = mapped_column(Integer, primary_key=True)
    unit: Mapped[str] = mapped_column(String(COLUMN_LENGTH), primary_key=True)


# -- the report the flag page shows -------------------------------------------------------------------


TABLES = [ExposureCount.__table__, ExposureUnit.__table__]


# -- recording ------------------------------------------------------------------------------------------


class ExposureRecorder:
    """One app's exposure buffer and writer. `clock()` gives Unix seconds (tests may replace it)."""

    def __init__(self, app: Flask, db: Any, flush_seconds: float, clock: Callable[[], float] = time.time):
        self.app = app
        self.db = db
        self.flush_seconds = flush_seconds
        self.clock = clock
        self.dropped = 0
        self._reset_for_this_process()
        forks.in_child(self._after_fork)

    def _after_fork(self) -> None:
        """In a forked child (gunicorn --preload): the parent's buffer, locks, thread and pooled connections
        are not ours; the parent writes its own entries."""
        if isinstance(self.db, Engine):
            self.db.dispose(close=False)  # forgotten, not closed (Flask-SQLAlchemy's: the store does this)
        self._reset_for_this_process()

    def _reset_for_this_process(self) -> None:
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._counts: dict[int, dict[gatekeeper.Evaluation, int]] = {}  # hour -> evaluation -> count
        self._units: dict[tuple[int, str], set[gatekeeper.Evaluation]] = {}  # (day, unit) -> rule's
        self._entries = 0  # what the two hold: evaluations counted per hour, plus per day and unit
        # What requests left, not counted yet: (time, url rule, user id, anonymous id, parsed cookies,
        # answer tables or evaluations), appended without a lock (a deque's append is atomic) and counted
        # into the two above by whoever reads them next (`_drain`).
        self._queue: deque[tuple[float, Any, Any, str | None, str | None, Any]] = deque()
        self._wake = threading.Event()
        self._writer: threading.Thread | None = None
        self._pruned_hour = -1

    @property
    def engine(self) -> Engine:
        """The database's Engine, from any thread (Flask-SQLAlchemy's needs the app's context)."""
        if isinstance(self.db, Engine):
            return self.db
        if has_app_context():
            return self.db.engine
        with self.app.app_context():
            return self.db.engine

    @property
    def pending(self) -> int:
        """Entries recorded in this process and not written yet."""
        self._drain()
        return self._entries

    def record(self, sender: Any, flag: str, variant: str, reason: str, user_id: Any, **_: Any) -> None:
        """Buffer one exposure outside a request: connect it to `flag_evaluated` in a worker process to
        count jobs' evaluations too. In a request it does nothing (`count_request` counts those)."""
        if has_request_context():
            return
        try:
            unit = str(user_id) if user_id is not None else None
            self._add([gatekeeper.Evaluation(flag, variant, reason)], unit)
        except Exception:
            log.exception("gatekeeper_exposures: could not record an exposure of %s", flag)

    def count_request(self, gk: gatekeeper.Gatekeeper, request: Any) -> None:
        """The engine's `on_request_end`, for a request that asked flags: queue its exposures, what
        `flag_evaluated` announced for it (one per flag); the dashboard's own are not exposures.

        The request only appends what it already holds (its endpoint's rule, its user id, its anonymous id or
        its parsed cookies, its answers); `_drain`, in the writer's thread or whoever reads the counts, turns
        that into a unit and evaluations and leaves the dashboard's out."""
        try:
            user_id = gk._user_id  # loaded by the first evaluation
            if user_id is _MISSING:
                user_id = gk.user_id
            anonymous = cookies = None
            if user_id is None:
                anonymous = gk._anonymous_id  # a rollout's, when one asked
                if anonymous is None:  # the cookies the first flag read: the writer reads `gk_anon` (`_unit`)
                    cookies = gk._request_cookies
            queue = self._queue
            if len(queue) < MAX_PENDING:  # a deque's append is atomic: no lock
                queue.append((self.clock(), request.url_rule, user_id, anonymous, cookies, gk._flags))
                if len(queue) >= FLUSH_SOON:
                    self._wake.set()
            else:
                self.dropped += len(gk._flags)
            if self._writer is None and self.flush_seconds > 0:
                self._start_writer()
        except Exception:  # an exposure is never worth a failed request
            log.exception("gatekeeper_exposures: could not record a request's exposures")

    def _add(self, evaluations: Iterable[gatekeeper.Evaluation], unit: str | None) -> None:
        """Buffer one unit's evaluations (counted by the next `_drain`), within MAX_PENDING requests."""
        evaluations = tuple(evaluations)
        if len(self._queue) < MAX_PENDING:
            self._queue.append((self.clock(), None, unit, None, None, evaluations))
            if len(self._queue) >= FLUSH_SOON:
                self._wake.set()
        else:
            self.dropped += len(evaluations)
        if self._writer is None and self.flush_seconds > 0:
            self._start_writer()

    def _drain(self) -> None:
        """Count what requests left in the queue into the buffer, within MAX_PENDING entries."""
        queue = self._queue
        with self._lock:
            while queue:
                moment, rule, user_id, anonymous, cookies, answers = queue.popleft()
                if rule is not None and rule.endpoint.rpartition(".")[0] == DASHBOARD_BLUEPRINT:
                    continue
                if type(answers) is dict:  # a request's answer tables, flag -> {..., _EVALUATION: ...}
                    answers = tuple(map(_evaluation_of, answers.values()))
                self._count(int(moment // 3600), _unit(user_id, anonymous, cookies), answers)

    def _count(self, hour: int, unit: str | None, evaluations: tuple[gatekeeper.Evaluation, ...]) -> None:
        """Count one unit's evaluations of one hour (under the lock)."""
        if unit is not None and not _fits(unit):
            unit = None  # e.g. a user id longer than the column: its exposures still count, not as a unit
        counts = self._counts.get(hour)
        if counts is None:
            counts = self._counts[hour] = {}
        units = None
        if unit is not None:  # (all the unit's evaluations: the writer keeps those the rule decided)
            units = self._units.get((hour // 24, unit))
            if units is None:
                units = self._units[hour // 24, unit] = set()
        if self._entries + 2 * len(evaluations) <= MAX_PENDING:  # room for all: C's loops
            before = len(counts) + (len(units) if units is not None else 0)
            _count_elements(counts, evaluations)
            if units is not None:
                units.update(evaluations)
            self._entries += len(counts) + (len(units) if units is not None else 0) - before
        else:
            self._add_within_room(counts, units, evaluations)

    def _add_within_room(
        self,
        counts: dict[gatekeeper.Evaluation, int],
        units: set[gatekeeper.Evaluation] | None,
        evaluations: tuple[gatekeeper.Evaluation, ...],
    ) -> None:
        """`_count` near MAX_PENDING (under the lock): one at a time, dropping what does not fit."""
        for evaluation in evaluations:
            count = counts.get(evaluation)
            if count is not None:
                counts[evaluation] = count + 1
            elif self._entries < MAX_PENDING:
                counts[evaluation] = 1
                self._entries += 1
            else:
                self.dropped += 1
                continue
            if units is not None and evaluation.reason == gatekeeper.RULE and evaluation not in units:
                if self._entries < MAX_PENDING:
                    units.add(evaluation)
                    self._entries += 1
                else:
                    self.dropped += 1

    def flush(self) -> int:
        """Write everything pending; returns how many entries were written (0 when the write failed)."""
        with self._flush_lock:
            self._drain()
            with self._lock:
                by_hour, by_unit = self._counts, self._units
                self._counts, self._units, self._entries = {}, {}, 0
            counts, units = _rows(by_hour, by_unit)
            if not counts and not units:
                return 0
            try:
                with Session(self.engine) as session, session.begin():
                    _add_counts(session, counts)
                    _add_units(session, units)
                    self._prune(session)
            except (DataError, IntegrityError) as error:
                # The database refused some row's data (not an outage): write them one at a time, so that
                # only the rows it refuses are dropped, never the whole batch again and again.
                log.warning(
                    "gatekeeper_exposures: the database refused a batch (%r); writing row by row", error
                )
                return self._write_one_by_one(counts, units)
            except Exception as error:
                log.warning("gatekeeper_exposures: writing %d entries failed (%r); kept", len(counts), error)
                self._keep(counts, units)
                return 0
            return len(counts) + len(units)

    def _write_one_by_one(
        self, counts: dict[tuple[str, str, int], int], units: set[tuple[str, str, int, str]]
    ) -> int:
        """Write each entry in a savepoint of its own, dropping (and counting) those the database refuses."""
        written = 0
        try:
            with Session(self.engine) as session, session.begin():
                entries = [(_add_counts, {key: count}) for key, count in counts.items()]
                entries += [(_add_units, {unit}) for unit in units]
                for write, entry in entries:
                    try:
                        with session.begin_nested():
                            write(session, entry)  # type: ignore[operator]
                        written += 1
                    except (DataError, IntegrityError) as error:
                        with self._lock:
                            self.dropped += 1
                        log.warning("gatekeeper_exposures: dropped an entry the database refused (%r)", error)
        except Exception as error:
            log.warning("gatekeeper_exposures: writing %d entries failed (%r); kept", len(counts), error)
            self._keep(counts, units)
            return 0
        return written

    def report(
        self,
        flag: str,
        config: gatekeeper.FeatureFlagConfig | None = None,
        weights: Mapping[str, float] | None = None,
    ) -> ExposureReport:
        """What the flag page shows; this process's pending entries are written first, so they count."""
        self.flush()
        now_hour = int(self.clock() // 3600)
        first_hour, first_day = now_hour - CHART_HOURS + 1, now_hour // 24 - UNIT_WINDOW_DAYS + 1
        with Session(self.engine) as session:
            rows = session.execute(
                select(ExposureCount.variant, ExposureCount.hour, ExposureCount.count).where(
                    ExposureCount.flag == flag, ExposureCount.hour >= first_hour
                )
            ).all()
            units = dict(
                session.execute(
                    select(ExposureUnit.variant, func.count(func.distinct(ExposureUnit.unit)))
                    .where(ExposureUnit.flag == flag, ExposureUnit.day >= first_day)
                    .group_by(ExposureUnit.variant)
                ).all()
            )
        variants = list(config.get_variants()) if config is not None else []
        variants += sorted({variant for variant, _, _ in rows} - set(variants))
        series = {variant: [0] * CHART_HOURS for variant in variants}
        for variant, hour, count in rows:
            if 0 <= hour - first_hour < CHART_HOURS:
                series[variant][hour - first_hour] += count
        hours = [datetime.fromtimestamp((first_hour + i) * 3600, UTC) for i in range(CHART_HOURS)]
        weights = weights or rollout_weights(config)
        shares, chi_square, p_value = split_of_units(variants, units, weights)
        return ExposureReport(flag, hours, series, shares, chi_square, p_value)

    def _start_writer(self) -> None:
        with self._lock:
            if self._writer is not None:
                return
            self._writer = threading.Thread(
                target=self._write_forever, name="gatekeeper-exposures", daemon=True
            )
        self._writer.start()

    def _write_forever(self) -> None:
        while True:
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            try:
                with self.app.app_context():
                    self.flush()
            except Exception:  # keep writing later; flush() already keeps what it could not write
                log.exception("gatekeeper_exposures: the writer failed")

    def _keep(self, counts: dict[tuple[str, str, int], int], units: set[tuple[str, str, int, str]]) -> None:
        """Put rows a write could not take back into the buffer (as the rule's evaluations: a row keeps only
        its flag and variant), within MAX_PENDING."""
        with self._lock:
            for (flag, variant, hour), count in counts.items():
                evaluation = gatekeeper.Evaluation(flag, variant, gatekeeper.RULE)
                bucket = self._counts.setdefault(hour, {})
                if evaluation in bucket:
                    bucket[evaluation] += count
                elif self._entries < MAX_PENDING:
                    bucket[evaluation] = count
                    self._entries += 1
                else:
                    self.dropped += count
            for flag, variant, day, unit in units:
                evaluation = gatekeeper.Evaluation(flag, variant, gatekeeper.RULE)
                held = self._units.setdefault((day, unit), set())
                if evaluation not in held and self._entries < MAX_PENDING:
                    held.add(evaluation)
                    self._entries += 1

    def _prune(self, session: Session) -> None:
        hour = int(self.clock() // 3600)
        if hour == self._pruned_hour:
            return
        self._pruned_hour = hour
        session.execute(delete(ExposureCount).where(ExposureCount.hour < hour - RETENTION_DAYS * 24))
        session.execute(delete(ExposureUnit).where(ExposureUnit.day < hour // 24 - RETENTION_DAYS))


class Exposures:
    """The extension object: `exposures.init_app(app, db)` starts recording that app's flag exposures."""

    def init_app(
        self, app: Flask, db: Any, *, clock: Callable[[], float] = time.time
    ) -> ExposureRecorder | None:
        """Record `app`'s exposures into `db` (Flask-SQLAlchemy or an Engine) unless GATEKEEPER_EXPOSURES is
        off; adds `gatekeeper_exposure_report(flag)` for the dashboard's templates.

        Under TESTING no writer thread runs: entries are written when the dashboard reads them, by
        `flush()`, or at exit, so a test sees exactly what it recorded.
        """
        app.jinja_env.globals["gatekeeper_exposure_report"] = _report_for_current_app
        if not app.config.get("GATEKEEPER_EXPOSURES", True):
            return None
        flush_seconds = 0.0 if app.testing else float(app.config.get("GATEKEEPER_EXPOSURES_FLUSH", 10.0))
        recorder = ExposureRecorder(app, db, flush_seconds, clock)
        app.extensions["gatekeeper_exposures"] = recorder
        # Requests are read at their end (`request.gk.evaluations()`), not through the signal: a blinker
        # send costs ~3 µs, so a receiver would add that to every flag of every request. Only a request
        # that asked a flag ends with this call: a teardown hook would cost every request Flask's call.
        gatekeeper.on_request_end(app, recorder.count_request)
        _RECORDERS.add(recorder)
        return recorder

    def create_tables(self) -> None:
        """Create the exposure tables on the current app's database (idempotent)."""
        recorder = current_app.extensions.get("gatekeeper_exposures")
        if recorder is not None:
            Base.metadata.create_all(recorder.engine, tables=TABLES)

    def recorder(self, app: Flask | None = None) -> ExposureRecorder | None:
        """The app's recorder (default: the current app's); None when exposures are off."""
        return (app or current_app).extensions.get("gatekeeper_exposures")


exposures = Exposures()


# -- helpers --------------------------------------------------------------------------------------------

_RECORDERS: weakref.WeakSet[ExposureRecorder] = weakref.WeakSet()


@atexit.register
def _flush_at_exit(pause: float = 0.5) -> None:
    """Write what this process's recorders hold. A write that fails (a database blip, a lock timeout) is
    tried again a moment later, a few times: after exit nothing is left to keep the entries."""
    for recorder in list(_RECORDERS):
        if recorder._pid != os.getpid():
            continue
        with recorder.app.app_context():
            for attempt in range(EXIT_ATTEMPTS):
                recorder.flush()
                if not recorder.pending:
                    break
                if attempt + 1 < EXIT_ATTEMPTS:
                    time.sleep(pause)


def _report_for_current_app(flag: str) -> ExposureReport | None:
    """The flag page's report; None (the page leaves the section out) when off or the database fails."""
    recorder = exposures.recorder()
    if recorder is None:
        return None
    try:
        state = gatekeeper.get_state()
        # The weights the rule runs on: those set at runtime when there are any, else the code's ROLLOUT.
        stored = getattr(state.store.snapshot(), "weights", {}).get(flag) if state.store is not None else None
        return recorder.report(flag, state.config_map.get(flag), weights=stored)
    except SQLAlchemyError as error:
        log.warning("gatekeeper_exposures: cannot read the exposures of %s (%r)", flag, error)
        return None


def _unit(user_id: Any, anonymous: str | None, cookies: Mapping[str, str] | None) -> str | None:
    """A request's visitor as a unit: the user's id; else the anonymous id a rollout gave them, or their
    `gk_anon` cookie's (of the request's `cookies`) when it is one the engine accepts
    (`gatekeeper.valid_anonymous_id`); a cookie the engine would refuse is no unit at all."""
    if user_id is not None:
        return str(user_id)
    if anonymous:
        return _ANONYMOUS_PREFIX + anonymous
    cookie = gatekeeper.cookie_in(cookies, ANONYMOUS_COOKIE) if cookies is not None else None
    unit = _recent_units.get(cookie, _MISSING) if cookie is not None else None
    if unit is _MISSING:  # checked once per cookie value, as the engine checks it
        anonymous = gatekeeper.valid_anonymous_id(cookie)
        unit = _ANONYMOUS_PREFIX + anonymous if anonymous else None
        if len(_recent_units) >= RECENT_UNITS:
            _recent_units.clear()
        _recent_units[cookie] = unit
    return unit


RECENT_UNITS = 4096  # visitors' cookies checked lately, with their unit (None: a cookie that is no unit)
_recent_units: dict[str, str | None] = {}


_MISSING = gatekeeper._MISSING
ANONYMOUS_COOKIE = gatekeeper.ANONYMOUS_COOKIE
_evaluation_of = gatekeeper._evaluation_of


def _rows(
    by_hour: Mapping[int, Mapping[gatekeeper.Evaluation, int]],
    by_unit: Mapping[tuple[int, str], set[gatekeeper.Evaluation]],
) -> tuple[dict[tuple[str, str, int], int], set[tuple[str, str, int, str]]]:
    """The buffer as the tables' rows: (flag, variant, hour) -> count, and (flag, variant, day, unit)."""
    counts: dict[tuple[str, str, int], int] = {}
    for hour, bucket in by_hour.items():
        for evaluation, count in bucket.items():
            key = (evaluation.flag, evaluation.variant, hour)
            counts[key] = counts.get(key, 0) + count
    units = {  # only what the rule decided says anything about its split
        (evaluation.flag, evaluation.variant, day, unit)
        for (day, unit), evaluations in by_unit.items()
        for evaluation in evaluations
        if evaluation.reason == gatekeeper.RULE
    }
    return counts, units


def _fits(text: str) -> bool:
    return len(text) <= COLUMN_LENGTH and "\x00" not in text


def _add_counts(session: Session, counts: Mapping[tuple[str, str, int], int]) -> None:
    if not counts:
        return
    # Sorted: workers that write the same keys at once (at shutdown, say) then lock their rows in one order,
    # so their upserts wait for each other instead of deadlocking (which would fail one write).
    rows = [{"flag": f, "variant": v, "hour": h, "count": n} for (f, v, h), n in sorted(counts.items())]
    dialect = session.get_bind().dialect.name
    if dialect in ("sqlite", "postgresql"):
        # Core statements on the table (not the ORM entity): an ORM bulk insert costs several times more.
        table = ExposureCount.__table__
        insert = (sqlite if dialect == "sqlite" else postgresql).insert(table)
        session.execute(
            insert.on_conflict_do_update(
                index_elements=["flag", "variant", "hour"],
                set_={"count": table.c.count + insert.excluded.count},
            ),
            rows,
        )
        return
    for row in rows:  # any other database: one row at a time
        existing = session.get(ExposureCount, (row["flag"], row["variant"], row["hour"]))
        if existing is None:
            session.add(ExposureCount(**row))
        else:
            existing.count += row["count"]


def _add_units(session: Session, units: set[tuple[str, str, int, str]]) -> None:
    if not units:
        return
    rows = [{"flag": f, "variant": v, "day": d, "unit": u} for f, v, d, u in sorted(units)]  # (as above)
    dialect = session.get_bind().dialect.name
    if dialect in ("sqlite", "postgresql"):
        insert = (sqlite if dialect == "sqlite" else postgresql).insert(ExposureUnit.__table__)
        session.execute(insert.on_conflict_do_nothing(), rows)
        return
    for row in rows:
        if session.get(ExposureUnit, tuple(row.values())) is None:
            session.add(ExposureUnit(**row))
