"""Request outcomes per flag variant: how the requests that were served each variant went, per minute.

A release (releases.py) compares a treatment variant with a control variant on these totals, and they are
kept for nothing else: only a request that asks a flag a release is under way on (the snapshot's
`watched`) is counted, and every other request pays nothing for them. Each row of
`gatekeeper_outcomes` holds, for one flag, variant, minute (since the Unix epoch) and metric, the number of
observations, their sum and their sum of squares: `errors` (one observation per request, 1 for a 5xx or an
unhandled exception), `latency_ms` (from the request's first flag to its response, with a fixed log-scale
histogram for its p95), and any metric the app tracks (`gatekeeper.track("checkout_completed", value=1.0)`).
Totals add, so every process adds its own and a release reads the sum since it began.
"""

from __future__ import annotations

import atexit
import logging
import math
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import Flask, Response, current_app
from sqlalchemy import Engine, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from . import forks, timer
from .engine import gatekeeper
from .guardrails import ArmStats
from .tables import OutcomeRow

log = logging.getLogger(__name__)

ERRORS, LATENCY = "errors", "latency_ms"
# The latency histogram's buckets: upper bounds 1, 2, 4, ... ms (doubling), the last one open.
BUCKETS = 20


@dataclass
class Totals:
    """One (flag, variant, minute, metric)'s running totals, as buffered and as stored."""

    n: int = 0
    total: float = 0.0
    total_squares: float = 0.0
    buckets: list[int] | None = None

    def add(self, value: float, *, histogram: bool = False) -> None:
        self.n += 1
        self.total += value
        self.total_squares += value * value
        if histogram:
            if self.buckets is None:
                self.buckets = [0] * BUCKETS
            self.buckets[bucket_of(value)] += 1


def bucket_of(milliseconds: float) -> int:
    """The histogram bucket of a duration: 0 for up to 1 ms, then one per doubling, the last open-ended."""
    if milliseconds <= 1.0:
        return 0
    return min(BUCKETS - 1, math.ceil(math.log2(milliseconds)))


def bucket_upper_bound(index: int) -> float:
    return math.inf if index >= BUCKETS - 1 else float(2**index)


def percentile(buckets: Iterable[int], share: float) -> float | None:
    """The upper bound of the bucket that holds the `share` quantile (e.g. 0.95): an upper estimate."""
    counts = list(buckets)
    total = sum(counts)
    if not total:
        return None
    running = 0
    for index, count in enumerate(counts):
        running += count
        if running >= share * total:
            return bucket_upper_bound(index)
    return math.inf


Key = tuple[str, str, int, str]  # flag, variant, minute, metric


def add(engine: Engine, totals: Mapping[Key, Totals]) -> None:
    """Add buffered totals to the stored ones, in one transaction (an upsert per row)."""
    if not totals:
        return
    with Session(engine) as session, session.begin():
        add_in(session, totals)


def add_in(session: Session, totals: Mapping[Key, Totals]) -> None:
    """Each entry is one upsert that adds to the stored totals, so processes writing at once lose nothing.
    A latency histogram's buckets are rows of their own (metric `latency_ms#7`: n requests in bucket 7)."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    table = OutcomeRow.__table__
    rows = []
    for (flag, variant, minute, metric), entry in totals.items():
        rows.append((flag, variant, minute, metric, entry.n, entry.total, entry.total_squares))
        for index, count in enumerate(entry.buckets or ()):
            if count:
                rows.append((flag, variant, minute, f"{metric}#{index}", count, 0.0, 0.0))
    for flag, variant, minute, metric, n, total, squares in rows:
        statement = insert(table).values(
            flag=flag, variant=variant, minute=minute, metric=metric, n=n, total=total, total_squares=squares
        )
        session.execute(
            statement.on_conflict_do_update(
                index_elements=["flag", "variant", "minute", "metric"],
                set_={
                    "n": table.c.n + n,
                    "total": table.c.total + total,
                    "total_squares": table.c.total_squares + squares,
                },
            )
        )


@dataclass(frozen=True)
class ArmOutcomes:
    """One variant's totals on one metric over a span of minutes, and the p95 of latency."""

    stats: ArmStats
    p95: float | None = None


# What a flag had stored in one minute before a moment: {variant: {metric: [n, total, total_squares]}}.
Baseline = Mapping[str, Mapping[str, list[float]]]


def minute_of(moment: datetime) -> int:
    return int(moment.timestamp() // 60)


def baseline_in(session: Session, flag: str, moment: datetime) -> dict[str, dict[str, list[float]]]:
    """The flag's totals stored so far in the minute of `moment` (every metric, histogram buckets too): what
    a count "since `moment`" subtracts, so requests earlier in that minute (another release's, the previous
    step's) are not counted. Requests still buffered in a process at `moment` are the only ones that leak in
    (at most `GATEKEEPER_OUTCOMES_FLUSH` seconds' worth)."""
    table = OutcomeRow.__table__
    found: dict[str, dict[str, list[float]]] = {}
    for variant, metric, n, total, squares in session.execute(
        select(table.c.variant, table.c.metric, table.c.n, table.c.total, table.c.total_squares).where(
            table.c.flag == flag, table.c.minute == minute_of(moment)
        )
    ):
        found.setdefault(variant, {})[metric] = [int(n), float(total), float(squares)]
    return found


def totals(
    engine: Engine,
    flag: str,
    variants: Iterable[str],
    metric: str,
    since: datetime,
    baseline: Baseline | None = None,
) -> dict[str, ArmOutcomes]:
    """Each variant's totals on `metric` from the minute of `since` on (variants with none: empty), less
    `baseline` (`baseline_in` taken at `since`): what came before `since` in its minute."""
    table = OutcomeRow.__table__
    wanted = list(variants)
    first_minute = minute_of(since)
    before = baseline or {}

    def less(variant: str, name: str, n: Any, total: Any, squares: Any) -> tuple[int, float, float]:
        earlier = before.get(variant, {}).get(name, (0, 0.0, 0.0))
        return (
            max(int(n or 0) - int(earlier[0]), 0),
            float(total or 0.0) - float(earlier[1]),
            max(float(squares or 0.0) - float(earlier[2]), 0.0),
        )

    with engine.connect() as connection:
        rows = connection.execute(
            select(
                table.c.variant,
                func.sum(table.c.n),
                func.sum(table.c.total),
                func.sum(table.c.total_squares),
            )
            .where(table.c.flag == flag, table.c.metric == metric, table.c.minute >= first_minute)
            .where(table.c.variant.in_(wanted))
            .group_by(table.c.variant)
        ).all()
        histograms: dict[str, list[int]] = {}
        if metric == LATENCY:
            for variant, bucket_metric, count in connection.execute(
                select(table.c.variant, table.c.metric, func.sum(table.c.n))
                .where(table.c.flag == flag, table.c.minute >= first_minute, table.c.variant.in_(wanted))
                .where(table.c.metric.like(f"{LATENCY}#%"))
                .group_by(table.c.variant, table.c.metric)
            ):
                index = int(bucket_metric.partition("#")[2])
                count = less(variant, bucket_metric, count, 0, 0)[0]
                histograms.setdefault(variant, [0] * BUCKETS)[index] += count
    binary = metric == ERRORS
    found = {
        variant: ArmOutcomes(
            ArmStats(*less(variant, metric, n, total, squares), binary=binary),
            percentile(histograms[variant], 0.95) if variant in histograms else None,
        )
        for variant, n, total, squares in rows
    }
    empty = ArmOutcomes(ArmStats(binary=binary))
    return {variant: found.get(variant, empty) for variant in wanted}


# -- recording, off the request path ------------------------------------------------------------------------

MAX_KEYS = 20_000  # buffered (flag, variant, minute, metric) entries per process before new ones are dropped
EXTENSION = "gatekeeper_outcomes"
DASHBOARD_BLUEPRINT = "gatekeeper"
TRACKED = "gatekeeper_tracked"  # where `gatekeeper.track()` keeps a request's metrics (its __dict__)


class OutcomeRecorder:
    """One app's outcome buffer: each request that asked a flag under a release adds, per flag and variant
    it was served, one `errors` observation (1 for a 5xx or an unhandled exception), its duration in
    `latency_ms` (from its first such flag), and the metrics the app tracked with `gatekeeper.track()`. The
    timer writes the buffer every `GATEKEEPER_OUTCOMES_FLUSH` seconds (5); what is left is written at exit.
    Bounded: past MAX_KEYS entries new ones are dropped and counted.

    It rides the engine's `on_response`: a request that asks no flag under a release runs none of it. One
    that does only appends one tuple to a queue (no lock: a deque's append is atomic); whoever reads the
    buffer next (the writer, `pending`) counts the queue into the totals, off the request path."""

    def __init__(self, app: Flask, engine_of: Callable[[], Engine], clock: Callable[[], float] = time.time):
        self.app = app
        self.engine_of = engine_of
        self.clock = clock
        self.dropped = 0
        self._reset_for_this_process()
        forks.in_child(self._reset_for_this_process)  # a forked child starts with an empty buffer

    def _reset_for_this_process(self) -> None:
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._buffer: dict[Key, Totals] = {}
        self._queue: deque[tuple[int, Any, bool, float | None, tuple[tuple[str, float], ...]]] = deque()

    @property
    def pending(self) -> int:
        with self._lock:
            self._count_queue()
            return len(self._buffer)

    def responded(self, gk: Any, response: Response, started: float) -> None:
        """The engine's `on_response`, for a request that asked a flag under a release: queue its outcome
        (a 5xx is an error; an unhandled exception is one too, as the 500 Flask makes of it), its duration
        from its first such flag to its response, and what it tracked. The dashboard's own requests are not
        counted."""
        rule = gk.request.url_rule  # `request.blueprint`, without its two properties
        if rule is not None and rule.endpoint.rpartition(".")[0] == DASHBOARD_BLUEPRINT:
            return
        duration_ms = (time.perf_counter() - started) * 1000
        # A tuple of the engine's (shared) evaluations: with only atoms and tuples in it, the queued entry
        # is one the garbage collector stops tracking (a list would be traversed by every collection).
        evaluations = tuple(gk.evaluations())
        tracked = gk.request.__dict__.get(TRACKED) or ()
        self.add(evaluations, response.status_code >= 500, duration_ms, tracked)

    def add(
        self,
        evaluations: Iterable[Any],
        failed: bool,
        duration_ms: float | None,
        tracked: Iterable[tuple[str, float]] = (),
    ) -> None:
        """Count one request against each (flag, variant) it was served (queued; the next reader counts)."""
        if len(self._queue) >= MAX_KEYS:
            self.dropped += 1
            return
        self._queue.append((int(self.clock() // 60), evaluations, failed, duration_ms, tuple(tracked)))

    def _count_queue(self) -> None:
        """Count the queued requests into the totals (the caller holds the lock), within MAX_KEYS entries."""
        buffer, queue = self._buffer, self._queue
        while queue:
            minute, evaluations, failed, duration_ms, tracked = queue.popleft()
            observations: list[tuple[str, float, int | None]] = [(ERRORS, 1.0 if failed else 0.0, None)]
            if duration_ms is not None:
                observations.append((LATENCY, duration_ms, bucket_of(duration_ms)))
            observations.extend((metric, value, None) for metric, value in tracked)
            for evaluation in evaluations:
                for metric, value, bucket in observations:
                    key = (evaluation.flag, evaluation.variant, minute, metric)
                    entry = buffer.get(key)
                    if entry is None:
                        if len(buffer) >= MAX_KEYS:
                            self.dropped += 1
                            continue
                        entry = buffer[key] = Totals()
                    entry.n += 1
                    entry.total += value
                    entry.total_squares += value * value
                    if bucket is not None:
                        if entry.buckets is None:
                            entry.buckets = [0] * BUCKETS
                        entry.buckets[bucket] += 1

    def flush(self) -> int:
        """Write what is buffered; on a failure keep it for the next time. Returns the entries written."""
        with self._lock:
            self._count_queue()
            buffer, self._buffer = self._buffer, {}
        if not buffer:
            return 0
        try:
            add(self.engine_of(), buffer)
        except Exception as error:
            log.warning("gatekeeper_outcomes: writing %d entries failed (%r); kept", len(buffer), error)
            with self._lock:
                for key, entry in buffer.items():
                    kept = self._buffer.setdefault(key, Totals())
                    kept.n += entry.n
                    kept.total += entry.total
                    kept.total_squares += entry.total_squares
                    if entry.buckets:
                        kept.buckets = [
                            a + b for a, b in zip(kept.buckets or [0] * BUCKETS, entry.buckets, strict=True)
                        ]
            return 0
        return len(buffer)


_RECORDERS: weakref.WeakSet[OutcomeRecorder] = weakref.WeakSet()


def init_app(app: Flask, engine_of: Callable[[], Engine]) -> OutcomeRecorder | None:
    """Count `app`'s request outcomes per flag variant unless `GATEKEEPER_OUTCOMES` is off."""
    if not app.config.get("GATEKEEPER_OUTCOMES", True):
        return None
    timer.every("outcomes", float(app.config.get("GATEKEEPER_OUTCOMES_FLUSH", 5.0)), flush_now)
    recorder = OutcomeRecorder(app, engine_of)
    app.extensions[EXTENSION] = recorder
    gatekeeper.on_response(app, recorder.responded)  # a request that asks no flag pays nothing
    _RECORDERS.add(recorder)
    return recorder


def recorder(app: Flask | None = None) -> OutcomeRecorder | None:
    return (app or current_app).extensions.get(EXTENSION)


def flush_now() -> int:
    """The timer's job: write the current app's buffered outcomes."""
    found = recorder()
    return found.flush() if found is not None else 0


@atexit.register
def _flush_at_exit() -> None:
    for found in list(_RECORDERS):
        if found._pid == os.getpid():
            with found.app.app_context():
                found.flush()
