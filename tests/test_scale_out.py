"""Scale-out on one real PostgreSQL: two gunicorn instances with two workers each, changes pushed between them
(LISTEN/NOTIFY), under load, through a database outage, and with both instances writing at once.

The instances serve the postgresql bake plus a test-only page (`scale_out_app/loadtest_app.py`, copied into
the bake here, never shipped): ten flags, and for each the variants `ff()` says yes to, and the worker's pid.
Figures (propagation and latency p50/p99) are printed, never asserted: the assertions count things.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from bakery import copy_project, csrf_token, flask_cli, gunicorn, log_in, run
from pgserver import PostgresServer, postgres_server

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("scale_out")]

FIXTURE_APP = Path(__file__).parent / "scale_out_app"
PASSWORD = "a scale-out test password"
ADMIN = "admin@example.com"
TTL = 30  # seconds: long, so what arrives sooner was pushed
BOUND = 10.0  # seconds every worker gets to serve a change; it takes milliseconds
FLIPS = 15
LOAD_SECONDS = 20
CONNECTIONS = 32


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {statistics.median(ordered) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms (n={len(ordered)})"


@dataclass
class Instance:
    url: str
    pids: set[int] = field(default_factory=set)

    def flags(self, timeout: float = 5) -> tuple[int, dict[str, list[str]]]:
        with urllib.request.urlopen(self.url + "/_flags", timeout=timeout) as response:
            body = json.load(response)
        return body["pid"], body["variants"]


@dataclass
class Cluster:
    server: PostgresServer
    project: Path
    env: dict[str, str]
    a: Instance
    b: Instance

    def flask(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = ["python", "-m", "flask", "--app", "loadtest_app", *args]
        return run(command, cwd=self.project, env=self.env, check=check)


@pytest.fixture(scope="module")
def cluster(bake, baked_env, tmp_path_factory) -> Iterator[Cluster]:
    with postgres_server() as server:
        url = server.create_database("scale_out")
        project = copy_project(bake(database="postgresql"), tmp_path_factory.mktemp("scale_out"))
        for path in FIXTURE_APP.glob("*.py"):
            shutil.copy(path, project)
        env = {
            **baked_env(extras=("dev", "postgres")),
            "DATABASE_URL": url,
            "SECRET_KEY": "scale-out-test-secret",
            "GATEKEEPER_STORE_TTL": str(TTL),
            "BAKED_PACKAGE": project.name,
        }
        flask_cli(project, env, "init-db")
        flask_cli(project, env, "users", "create", ADMIN, "--password", PASSWORD, "--admin")
        with (
            gunicorn(project, env, "--workers", "2", app="loadtest_app:app") as a_url,
            gunicorn(project, env, "--workers", "2", app="loadtest_app:app") as b_url,
        ):
            found = Cluster(server, project, env, Instance(a_url), Instance(b_url))
            for instance in (found.a, found.b):
                instance.pids = discover_workers(instance)
            yield found


def discover_workers(instance: Instance, workers: int = 2) -> set[int]:
    """The pids of the instance's workers, found by asking concurrently until each has answered."""
    pids: set[int] = set()
    deadline = time.monotonic() + 30
    with ThreadPoolExecutor(8) as pool:
        while len(pids) < workers and time.monotonic() < deadline:
            pids |= {pid for pid, _ in pool.map(lambda _: instance.flags(), range(16))}
    assert len(pids) == workers, f"found workers {pids} at {instance.url}"
    return pids


def time_until_every_worker_serves(
    instance: Instance, flag: str, variant: str, bound: float = BOUND
) -> float | None:
    """Seconds until every worker of `instance` has served `variant` of `flag`; None past `bound`."""
    start, latest = time.monotonic(), {}
    stop = threading.Event()
    lock = threading.Lock()
    done_at: list[float] = []

    def poll() -> None:
        while not stop.is_set():
            pid, variants = instance.flags()
            now = time.monotonic()
            with lock:
                latest[pid] = variants[flag] == [variant]
                if all(latest.get(p) for p in instance.pids) and not done_at:
                    done_at.append(now)
                    stop.set()
            if now - start > bound:
                stop.set()

    with ThreadPoolExecutor(4) as pool:
        for _ in range(4):
            pool.submit(poll)
    return done_at[0] - start if done_at else None


def dashboard_force(session, instance: Instance, flag: str, variant: str) -> str:
    """Force `variant` on `instance`'s dashboard as the logged-in admin; the page the redirect lands on."""
    page = session.open(f"{instance.url}/gatekeeper/flags/{flag}").read().decode()
    form = {"csrf_token": csrf_token(page), "variant": variant, "confirm": "yes"}
    body = urllib.parse.urlencode(form).encode()
    return session.open(f"{instance.url}/gatekeeper/flags/{flag}/force", data=body).read().decode()


def audit_count(cluster: Cluster, flag: str) -> int:
    output = cluster.flask("gk", "audit", "--flag", flag, "--limit", "10000").stdout
    return sum(1 for line in output.splitlines() if f"  {flag}  " in line)


def test_a_variant_forced_on_one_instance_reaches_every_worker_of_the_other(cluster):
    """Each force on A's dashboard is served by both workers of B within the bound (pushed, not the TTL), and
    is audited exactly once."""
    session, _ = log_in(cluster.a.url, ADMIN, PASSWORD)
    before = audit_count(cluster, "LOAD_0")
    delays = []
    for flip in range(FLIPS):
        variant = "AB"[(flip + 1) % 2]
        dashboard_force(session, cluster.a, "LOAD_0", variant)
        delays.append(time_until_every_worker_serves(cluster.b, "LOAD_0", variant))
    reached = [delay for delay in delays if delay is not None]
    print(f"\npropagation A's dashboard -> every worker of B: {percentiles(reached)}")
    assert len(reached) == FLIPS
    assert audit_count(cluster, "LOAD_0") - before == FLIPS


@dataclass
class LoadResult:
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    inconsistent: int = 0


def load(instances: list[Instance], seconds: float, connections: int = CONNECTIONS) -> LoadResult:
    """`connections` clients asking for the ten-flag page, alternating between instances, for `seconds`."""
    result, lock = LoadResult(), threading.Lock()
    deadline = time.monotonic() + seconds

    def client(number: int) -> None:
        turn = number
        while time.monotonic() < deadline:
            instance = instances[turn % len(instances)]
            turn += 1
            start = time.monotonic()
            try:
                with urllib.request.urlopen(instance.url + "/_flags", timeout=10) as response:
                    status, body = response.status, json.load(response)
            except urllib.error.HTTPError as error:
                status, body = error.code, None
            except OSError as error:
                with lock:
                    result.errors.append(repr(error))
                continue
            elapsed = time.monotonic() - start
            consistent = body is not None and all(len(v) == 1 for v in body["variants"].values())
            with lock:
                result.latencies.append(elapsed)
                result.statuses[status] = result.statuses.get(status, 0) + 1
                result.inconsistent += not consistent

    threads = [threading.Thread(target=client, args=(n,)) for n in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return result


@pytest.fixture
def flipper(cluster) -> Iterator[subprocess.Popen[str]]:
    """A third process forcing LOAD_1 to A, B, A, ... every 100 ms through the store."""
    process = subprocess.Popen(
        ["python", "flipper.py", "0.1"],
        cwd=cluster.project,
        env=cluster.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    yield process
    process.terminate()
    process.wait(timeout=10)


def test_under_load_with_a_flag_flipping_every_page_answers_and_is_consistent(cluster, flipper):
    """32 connections for 20 s on a ten-flag page across both instances while LOAD_1 flips every 100 ms:
    every response is a 200, and each names exactly one variant per flag."""
    result = load([cluster.a, cluster.b], LOAD_SECONDS)
    flipper.terminate()
    flips = [line for line in flipper.communicate(timeout=10)[0].splitlines() if line.startswith("flips")]
    total = sum(result.statuses.values())
    print(f"\nload: {total} responses, {percentiles(result.latencies)}, {len(flips)} flips")
    assert result.errors == []
    assert set(result.statuses) == {200}
    assert result.inconsistent == 0
    assert len(flips) > LOAD_SECONDS  # the flag really was flipping all along


def test_concurrent_writes_from_both_instances_lose_no_audit_entry(cluster):
    """Both dashboards force LOAD_3 back and forth at the same time: every change they report is audited,
    and every worker of both instances ends on the variant of the last audit entry."""
    sessions = {instance.url: log_in(instance.url, ADMIN, PASSWORD)[0] for instance in (cluster.a, cluster.b)}
    before = audit_count(cluster, "LOAD_3")

    def writer(instance: Instance, first: int) -> int:
        changed = 0
        for turn in range(10):
            page = dashboard_force(sessions[instance.url], instance, "LOAD_3", "AB"[(first + turn) % 2])
            changed += "everyone now gets" in page
        return changed

    with ThreadPoolExecutor(2) as pool:
        reported = sum(pool.map(writer, (cluster.a, cluster.b), (0, 1)))
    assert audit_count(cluster, "LOAD_3") - before == reported
    last = cluster.flask("gk", "audit", "--flag", "LOAD_3", "--limit", "1").stdout.split()[-1]
    for instance in (cluster.a, cluster.b):
        assert time_until_every_worker_serves(instance, "LOAD_3", last) is not None


def test_a_database_outage_keeps_pages_answering_and_writes_refused_until_it_is_back(cluster):
    """With PostgreSQL stopped under load, pages answer 200 from the last snapshot and a write is refused with
    a clear message, writing nothing; once it is back, writes and propagation resume without a restart."""
    dashboard_force(log_in(cluster.a.url, ADMIN, PASSWORD)[0], cluster.a, "LOAD_2", "B")
    assert time_until_every_worker_serves(cluster.b, "LOAD_2", "B") is not None
    before = audit_count(cluster, "LOAD_2")

    results: list[LoadResult] = []
    loader = threading.Thread(target=lambda: results.append(load([cluster.a, cluster.b], 8, connections=8)))
    loader.start()
    time.sleep(1)
    cluster.server.stop()
    try:
        refused = cluster.flask("gk", "force", "LOAD_2", "A", check=False)
        loader.join()
    finally:
        cluster.server.start()
    (outage,) = results
    print(f"\nduring the outage: {sum(outage.statuses.values())} responses, {percentiles(outage.latencies)}")
    assert outage.errors == [] and set(outage.statuses) == {200} and outage.inconsistent == 0
    assert refused.returncode != 0
    assert "unavailable" in refused.stderr and "nothing was changed" in refused.stderr
    for instance in (cluster.a, cluster.b):  # still the forced variant from before the outage
        assert time_until_every_worker_serves(instance, "LOAD_2", "B") is not None

    assert audit_count(cluster, "LOAD_2") == before  # the refused write left nothing behind
    cluster.flask("gk", "force", "LOAD_2", "A")
    for instance in (cluster.a, cluster.b):  # a listener may be in its backoff (at most 10 s) still
        assert time_until_every_worker_serves(instance, "LOAD_2", "A", bound=BOUND + 10) is not None
    assert audit_count(cluster, "LOAD_2") == before + 1
