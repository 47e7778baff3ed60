"""Scale-out with the Redis change feed: two gunicorn instances with two workers each on one real PostgreSQL,
store changes pushed through a real Redis (`GATEKEEPER_CHANGE_FEED=redis://...`), and Redis going away under
load.

The same test-only page and helpers as test_scale_out.py (`scale_out_app/`, copied into the bake, never
shipped). The TTL is 5 s (the default), so a change that reaches every worker within a second was pushed.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
from bakery import copy_project, flask_cli, gunicorn, log_in
from pgserver import postgres_server
from redisserver import RedisServer, redis_server
from test_scale_out import (
    ADMIN,
    BOUND,
    FIXTURE_APP,
    FLIPS,
    PASSWORD,
    Cluster,
    Instance,
    LoadResult,
    dashboard_force,
    discover_workers,
    load,
    percentiles,
    time_until_every_worker_serves,
)

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("scale_out")]

TTL = 5  # seconds: the default GATEKEEPER_STORE_TTL, the fallback while Redis is away
PUSHED = 1.0  # seconds: p99 of a change reaching every worker of both instances
OUTAGE = 10  # seconds Redis stays down
CHANNEL = "gatekeeper_changes"
WORKERS = 4  # two instances of two workers, one subscriber each


@dataclass
class RedisCluster(Cluster):
    redis: RedisServer | None = None


@pytest.fixture(scope="module")
def cluster(bake, baked_env, tmp_path_factory) -> Iterator[RedisCluster]:
    with postgres_server() as server, redis_server() as redis:
        url = server.create_database("redis_feed")
        baked = bake(database="postgresql", change_feed="redis")
        project = copy_project(baked, tmp_path_factory.mktemp("redis"))
        for path in FIXTURE_APP.glob("*.py"):
            shutil.copy(path, project)
        env = {
            **baked_env(extras=("dev", "postgres")),
            "DATABASE_URL": url,
            "SECRET_KEY": "redis-feed-test-secret",
            "GATEKEEPER_STORE_TTL": str(TTL),
            "GATEKEEPER_CHANGE_FEED": redis.url,
            "BAKED_PACKAGE": project.name,
        }
        flask_cli(project, env, "init-db")
        flask_cli(project, env, "users", "create", ADMIN, "--password", PASSWORD, "--admin")
        with (
            gunicorn(project, env, "--workers", "2", app="loadtest_app:app") as a_url,
            gunicorn(project, env, "--workers", "2", app="loadtest_app:app") as b_url,
        ):
            found = RedisCluster(server, project, env, Instance(a_url), Instance(b_url), redis)
            for instance in (found.a, found.b):
                instance.pids = discover_workers(instance)
            assert wait_for_subscribers(redis), "the four workers never subscribed"
            yield found


def wait_for_subscribers(redis: RedisServer, bound: float = BOUND + 10) -> bool:
    """Whether every worker is subscribed within `bound` seconds (Redis counts them)."""
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        if redis.subscribers(CHANNEL) >= WORKERS:
            return True
        time.sleep(0.05)
    return False


def time_until_both_serve(cluster: Cluster, flag: str, variant: str, bound: float = BOUND) -> float | None:
    """Seconds until every worker of both instances serves `variant` (polled at once); None past `bound`."""
    with ThreadPoolExecutor(2) as pool:
        polls = [
            pool.submit(time_until_every_worker_serves, instance, flag, variant, bound)
            for instance in (cluster.a, cluster.b)
        ]
        delays = [poll.result() for poll in polls]
    return None if None in delays else max(delays)


def p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def test_a_change_on_one_instance_reaches_every_worker_of_both_within_a_second(cluster):
    """Each force on A's dashboard is served by every worker of A and B, p99 under a second over 15 flips:
    pushed through Redis, since the TTL is five."""
    session, _ = log_in(cluster.a.url, ADMIN, PASSWORD)
    delays = []
    for flip in range(FLIPS):
        variant = "AB"[(flip + 1) % 2]
        dashboard_force(session, cluster.a, "LOAD_0", variant)
        delays.append(time_until_both_serve(cluster, "LOAD_0", variant))
    reached = [delay for delay in delays if delay is not None]
    print(f"\nRedis feed, A's dashboard -> every worker of A and B: {percentiles(reached)}")
    assert len(reached) == FLIPS
    assert p99(reached) < PUSHED


def test_with_redis_stopped_pages_answer_changes_arrive_within_the_ttl_and_pushes_resume(cluster):
    """Redis killed for 10 s under load: no 5xx, a change made meanwhile (its publish fails, the write stands)
    reaches every worker within the TTL; once Redis is back the workers resubscribe and pushes arrive within a
    second again."""
    assert cluster.redis is not None
    results: list[LoadResult] = []
    loader = threading.Thread(
        target=lambda: results.append(load([cluster.a, cluster.b], OUTAGE + 4, connections=8))
    )
    loader.start()
    time.sleep(1)
    cluster.redis.stop()
    stopped = time.monotonic()
    try:
        forced = cluster.flask("gk", "force", "LOAD_2", "B")  # a write without Redis: it must stand
        arrived = time_until_both_serve(cluster, "LOAD_2", "B", bound=TTL + 3)
        time.sleep(max(0.0, OUTAGE - (time.monotonic() - stopped)))
    finally:
        cluster.redis.start()
        loader.join()
    (during,) = results
    print(f"\nRedis down: {sum(during.statuses.values())} responses, {percentiles(during.latencies)}")
    took = "not within the bound" if arrived is None else f"in {arrived:.2f} s"
    print(f"a change made while Redis was down reached every worker {took} (TTL {TTL} s)")
    assert forced.returncode == 0 and "could not publish" in forced.stderr
    assert during.errors == [] and set(during.statuses) == {200} and during.inconsistent == 0
    assert arrived is not None  # within the TTL (and slack for a busy machine), by the TTL check

    assert wait_for_subscribers(cluster.redis)  # each worker's backoff is at most 10 s
    session, _ = log_in(cluster.b.url, ADMIN, PASSWORD)
    delays = []
    for variant in "ABAB":
        dashboard_force(session, cluster.b, "LOAD_2", variant)
        delays.append(time_until_both_serve(cluster, "LOAD_2", variant))
    shown = ", ".join("never" if delay is None else f"{delay * 1000:.0f} ms" for delay in delays)
    print(f"after Redis came back, B's dashboard -> every worker of A and B: {shown}")
    assert None not in delays and max(delays) < PUSHED
