"""Exposures: recorded off the request path, counted per variant and hour, distinct users per variant, shown
on the flag page with a chart and a sample-ratio-mismatch check."""

from __future__ import annotations

import hashlib
import re
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import ClassVar

import pytest
from flask import request
from sqlalchemy import func, select, text
from sqlalchemy.exc import OperationalError

from {{ cookiecutter.package_name }}.extensions import db
from {{ cookiecutter.package_name }}.gatekeeper import (
    Evaluation,
    FeatureFlagConfig,
    Gatekeeper,
    flag_evaluated,
)
from {{ cookiecutter.package_name }}.gatekeeper_config import FF_CONFIG_MAP
from {{ cookiecutter.package_name }}.gatekeeper_control import exposures as gatekeeper_exposures
from {{ cookiecutter.package_name }}.gatekeeper_control.exposures import ExposureCount, ExposureUnit, exposures
from {{ cookiecutter.package_name }}.gatekeeper_control.guardrails import chi_square_p_value


class SkewedFFConfig(FeatureFlagConfig):
    """Declares a 50/50 split but its rule gives 90% of users A: a broken rollout to catch."""

    FLAG_NAME = "SKEWED"
    VARIANTS_ENUM_STR = "A B"
    ROLLOUT: ClassVar[dict[str, float]] = {"A": 50, "B": 50}

    def _get_variant(self, user_id=None, app=None, request=None, session=None):
        return self.rollout(user_id, {"A": 90, "B": 10})


class FairFFConfig(FeatureFlagConfig):
    """A 50/50 split whose rule uses its own ROLLOUT."""

    FLAG_NAME = "FAIR"
    VARIANTS_ENUM_STR = "A B"
    ROLLOUT: ClassVar[dict[str, float]] = {"A": 50, "B": 50}

    def _get_variant(self, user_id=None, app=None, request=None, session=None):
        return self.rollout(user_id)


@pytest.fixture
def flag_page(app):
    """`/flag/<name>`: a page that asks one flag for its visitor (added before the app's first request)."""
    app.add_url_rule("/flag/<name>", "flag_page", lambda name: request.gk.ff_variant(name) or "")


@pytest.fixture
def admin_client(flag_page, client, admin, login):
    login(client, admin)
    return client


def stored_exposures(app, flag: str) -> int:
    """Exposures of `flag` written to the database (not the ones still buffered)."""
    with app.app_context():
        return db.session.scalar(
            select(func.coalesce(func.sum(ExposureCount.count), 0)).where(ExposureCount.flag == flag)
        )


def shares_row(page: str, variant: str) -> list[str]:
    """The cells of one variant's row in the flag page's shares table."""
    table = page[page.index('<table class="gk-table gk-shares">') :]
    rows = re.findall(r"<tr>(.*?)</tr>", table[: table.index("</table>")], re.DOTALL)
    (row,) = [row for row in rows if f"<code>{variant}</code>" in row]
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.DOTALL)
    return [re.sub(r"<[^>]+>", "", cell).strip() for cell in cells]


def visit(app, flag: str, visitors: int) -> None:
    """`visitors` anonymous visitors, each with their own `gk_anon` id, open a page asking `flag`. The ids
    are the same on every run, so a split test gives the same verdict each time (random ids made the fair
    split fail its p < 0.001 check once in a thousand runs, as it should)."""
    client = app.test_client(use_cookies=False)
    for number in range(visitors):
        visitor = hashlib.sha256(f"visitor {number}".encode()).hexdigest()[:32]
        response = client.get(f"/flag/{flag}", headers={"Cookie": f"gk_anon={visitor}"})
        assert response.status_code == 200


@pytest.mark.parametrize(
    ("statistic", "df", "p"),
    [
        (3.841, 1, 0.05),
        (10.828, 1, 0.001),
        (5.991, 2, 0.05),
        (13.816, 2, 0.001),
        (7.815, 3, 0.05),
        (0.455, 1, 0.5),
    ],
)
def test_chi_square_p_value_matches_the_table(statistic, df, p):
    """The p-value agrees with the chi-square table to three significant figures."""
    assert chi_square_p_value(statistic, df) == pytest.approx(p, rel=2e-3)


def test_dashboard_views_are_not_exposures(app, admin_client):
    """An admin reading the dashboard (which evaluates every flag for them) records no exposure."""
    admin_client.get("/gatekeeper/")
    admin_client.get("/gatekeeper/flags/MY_NEW_FEATURE")
    assert exposures.recorder(app).pending == 0
    assert stored_exposures(app, "MY_NEW_FEATURE") == 0


def test_requests_buffer_exposures_without_writing_them(app, client):
    """Page views record exposures in memory only: the request path writes nothing to the database."""
    for _ in range(5):
        assert client.get("/").status_code == 200
    assert exposures.recorder(app).pending > 0
    assert stored_exposures(app, "MY_NEW_FEATURE") == 0


def test_flag_page_counts_this_process_exposures_at_once(app, admin_client, make_user, login):
    """The flag page writes this process's buffer before reading, so the visits just made show: 3 users
    visiting twice each are 6 exposures of NOT_VISIBLE and 3 distinct users."""
    for n in range(3):
        visitor = app.test_client()
        login(visitor, make_user(f"visitor{n}@example.com", user_id=100 + n))
        visitor.get("/")
        visitor.get("/")
    page = admin_client.get("/gatekeeper/flags/MY_NEW_FEATURE").text
    assert shares_row(page, "NOT_VISIBLE")[1:4] == ["6", "3", "100.0%"]
    assert stored_exposures(app, "MY_NEW_FEATURE") >= 6


def test_forced_variants_count_as_exposures_but_not_as_split_users(app, admin_client, force_flag):
    """Everyone forced to VARIANT_A is exposed to it, but forcing says nothing about the rule's split."""
    force_flag("HOMEPAGE_EXPERIMENT", "VARIANT_A")
    visit(app, "HOMEPAGE_EXPERIMENT", 10)
    page = admin_client.get("/gatekeeper/flags/HOMEPAGE_EXPERIMENT").text
    assert shares_row(page, "VARIANT_A")[1:3] == ["10", "0"]


def test_chart_draws_one_line_per_variant_as_inline_svg_without_inline_styles(app, admin_client):
    """The last 24 hours are an SVG chart in the page (no script, no CDN), one polyline per variant, with
    colours from the stylesheet: no `style` attribute, so a strict CSP allows it."""
    visit(app, "HOMEPAGE_EXPERIMENT", 100)
    page = admin_client.get("/gatekeeper/flags/HOMEPAGE_EXPERIMENT").text
    section = page[page.index('<section class="gk-card gk-exposures"') :]
    section = section[: section.index("</section>")]
    assert '<svg class="gk-chart"' in section
    assert section.count("<polyline") == 3
    assert "style=" not in section
    assert "100 in all" in section


def test_a_skewed_rule_shows_a_sample_ratio_mismatch_warning(app, admin_client, monkeypatch):
    """A rule that splits 90/10 while ROLLOUT declares 50/50 is flagged (chi-square p < 0.001), with each
    variant's share next to the one expected."""
    monkeypatch.setitem(FF_CONFIG_MAP, "SKEWED", SkewedFFConfig())
    visit(app, "SKEWED", 400)
    page = admin_client.get("/gatekeeper/flags/SKEWED").text
    assert "Sample ratio mismatch" in page
    variant_a = shares_row(page, "A")
    assert int(variant_a[2]) > 300  # about 90% of the 400 visitors
    assert variant_a[4] == "50.0%"


def test_a_fair_split_shows_no_warning(app, admin_client, monkeypatch):
    """A rule that follows its ROLLOUT passes the check, and the page says so."""
    monkeypatch.setitem(FF_CONFIG_MAP, "FAIR", FairFFConfig())
    visit(app, "FAIR", 400)
    page = admin_client.get("/gatekeeper/flags/FAIR").text
    assert "Sample ratio mismatch" not in page
    assert "The split of visitors matches the weights" in page


def test_the_buffer_is_bounded_and_drops_what_does_not_fit(app, flag_page, monkeypatch):
    """Past MAX_PENDING entries new exposures are dropped and counted, never kept without bound."""
    monkeypatch.setattr(gatekeeper_exposures, "MAX_PENDING", 10)
    visit(app, "MY_NEW_FEATURE", 50)
    recorder = exposures.recorder(app)
    assert recorder.pending <= 10
    assert recorder.dropped > 0


def test_a_database_failure_never_fails_a_request_and_keeps_the_exposures(app, client, admin_client):
    """With the exposure tables gone, pages still answer 200 (the flag page without its chart) and the
    exposures stay buffered for a later write."""
    with app.app_context():
        db.session.execute(text("DROP TABLE gatekeeper_exposures"))
        db.session.commit()
    assert client.get("/").status_code == 200
    page = admin_client.get("/gatekeeper/flags/MY_NEW_FEATURE")
    assert page.status_code == 200
    assert "gk-exposures" not in page.text
    assert exposures.recorder(app).pending > 0


def test_evaluations_outside_requests_count_once_record_is_connected(app):
    """A job's evaluations are no request's: they count when `record` is connected to `flag_evaluated`."""
    recorder = exposures.recorder(app)
    with flag_evaluated.connected_to(recorder.record, sender=app), app.app_context():
        for user_id in range(1, 6):
            Gatekeeper(user_id=user_id).ff_variant("MY_NEW_FEATURE")
    recorder.flush()
    assert stored_exposures(app, "MY_NEW_FEATURE") == 5


def test_a_request_is_counted_once_even_with_record_connected(app, client):
    """Connected to the signal, `record` leaves requests to the end-of-request count: no double counting."""
    recorder = exposures.recorder(app)
    with flag_evaluated.connected_to(recorder.record, sender=app):
        client.get("/")
    recorder.flush()
    assert stored_exposures(app, "MY_NEW_FEATURE") == 1


def test_exposures_can_be_turned_off(make_app):
    """GATEKEEPER_EXPOSURES off: no recorder, pages still work, and the flag page's report is empty."""
    app = make_app(GATEKEEPER_EXPOSURES=False)
    assert exposures.recorder(app) is None
    assert app.test_client().get("/").status_code == 200
    with app.test_request_context():
        assert app.jinja_env.globals["gatekeeper_exposure_report"]("MY_NEW_FEATURE") is None


def test_the_background_writer_writes_the_buffer_outside_tests(make_app):
    """Outside TESTING a writer thread writes the buffer every GATEKEEPER_EXPOSURES_FLUSH seconds."""
    app = make_app(TESTING=False, GATEKEEPER_EXPOSURES_FLUSH=0.05)
    client = app.test_client()
    for _ in range(3):
        client.get("/")
    deadline = time.monotonic() + 10
    while stored_exposures(app, "MY_NEW_FEATURE") < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stored_exposures(app, "MY_NEW_FEATURE") == 3


def test_a_write_that_fails_at_exit_is_tried_again(app, client, monkeypatch):
    """At exit nothing is left to keep the buffer, so a failed write (a lock timeout, a blip) is retried."""
    client.get("/")
    write, attempts = gatekeeper_exposures._add_counts, []

    def fails_once(session, counts):
        attempts.append(len(counts))
        if len(attempts) == 1:
            raise OperationalError("INSERT INTO gatekeeper_exposures", {}, Exception("deadlock detected"))
        write(session, counts)

    monkeypatch.setattr(gatekeeper_exposures, "_add_counts", fails_once)
    monkeypatch.setattr(gatekeeper_exposures, "_RECORDERS", {exposures.recorder(app)})
    gatekeeper_exposures._flush_at_exit(pause=0)
    assert len(attempts) == 2
    assert stored_exposures(app, "MY_NEW_FEATURE") == 1


def test_counts_are_written_in_one_order_whatever_order_they_came_in(app, monkeypatch):
    """Rows go to the database sorted, so two workers writing the same keys lock them in the same order
    (in PostgreSQL, unsorted upserts of the same rows from two workers can deadlock and lose a write)."""
    written = []
    session_class = gatekeeper_exposures.Session
    monkeypatch.setattr(session_class, "execute", lambda session, statement, rows: written.append(rows))
    counts = {("B", "ON", 1): 1, ("A", "OFF", 1): 2, ("A", "ON", 1): 3}
    with app.app_context(), session_class(exposures.recorder(app).engine) as session:
        gatekeeper_exposures._add_counts(session, counts)
    assert [(row["flag"], row["variant"]) for row in written[0]] == [("A", "OFF"), ("A", "ON"), ("B", "ON")]


def test_what_is_left_in_the_buffer_is_written_when_the_process_exits(tmp_path):
    """A process that records exposures and exits without flushing still leaves them in the database."""
    database = tmp_path / "exit.db"
    script = (
        "from {{ cookiecutter.package_name }} import create_app, database\n"
        f"app = create_app(dict(TESTING=True, SECRET_KEY='x', SQLALCHEMY_DATABASE_URI='sqlite:///{database}'))\n"
        "with app.app_context():\n"
        "    database.init_db()\n"
        "client = app.test_client(use_cookies=False)\n"
        "for visitor in range(7):\n"
        "    client.get('/', headers={'Cookie': f'gk_anon={visitor:032x}'})\n"
    )
    project = Path(__file__).resolve().parent.parent
    subprocess.run([sys.executable, "-c", script], cwd=project, check=True, timeout=60)
    from sqlalchemy import create_engine

    with create_engine(f"sqlite:///{database}").connect() as connection:
        total = connection.scalar(
            select(func.sum(ExposureCount.count)).where(ExposureCount.flag == "MY_NEW_FEATURE")
        )
        units = connection.scalar(
            select(func.count()).select_from(ExposureUnit).where(ExposureUnit.flag == "MY_NEW_FEATURE")
        )
    assert (total, units) == (7, 7)


class ConstantFFConfig(FeatureFlagConfig):
    """A rule that decides without a rollout, so no anonymous id is asked for in the request."""

    FLAG_NAME = "CONSTANT"
    VARIANTS_ENUM_STR = "A B"

    def _get_variant(self, user_id=None, app=None, request=None, session=None):
        return self.variants_enum.A


def stored_units(app, flag: str) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(select(ExposureUnit.unit).where(ExposureUnit.flag == flag)))


@pytest.mark.parametrize("cookie", ["x" * 4000, "A" * 32, "0" * 31, "0" * 33, "../" * 11 + "ab"])
def test_a_cookie_the_engine_refuses_is_never_an_exposure_unit(app, flag_page, monkeypatch, cookie):
    """A `gk_anon` cookie that is not 32 lowercase hex digits (here 4,000 characters, or upper case) is no
    unit: the visit counts, but no row carries what the visitor wrote (a cookie flood cannot fill a disk)."""
    monkeypatch.setitem(FF_CONFIG_MAP, "CONSTANT", ConstantFFConfig())
    client = app.test_client(use_cookies=False)
    assert client.get("/flag/CONSTANT", headers={"Cookie": f"gk_anon={cookie}"}).status_code == 200
    exposures.recorder(app).flush()
    assert stored_exposures(app, "CONSTANT") == 1
    assert stored_units(app, "CONSTANT") == []


def test_a_well_formed_cookie_is_the_unit_of_a_rule_without_rollout(app, flag_page, monkeypatch):
    """The same visit with a cookie the engine could have set counts its visitor once, by that id."""
    monkeypatch.setitem(FF_CONFIG_MAP, "CONSTANT", ConstantFFConfig())
    visitor = secrets.token_hex(16)
    client = app.test_client(use_cookies=False)
    client.get("/flag/CONSTANT", headers={"Cookie": f"gk_anon={visitor}"})
    exposures.recorder(app).flush()
    assert stored_units(app, "CONSTANT") == [f"anon:{visitor}"]


def test_a_user_id_longer_than_the_column_counts_without_a_unit(app):
    """An id longer than the unit column (an app whose user hook returns long strings) is counted as an
    exposure but never written as a unit, which the database would refuse."""
    recorder = exposures.recorder(app)
    with app.app_context():
        recorder._add([Evaluation("CONSTANT", "A", "rule")], "u" * 500)
        assert recorder.flush() == 1
    assert stored_units(app, "CONSTANT") == []


def test_a_row_the_database_refuses_is_dropped_alone(app, monkeypatch):
    """When the database refuses one row of a batch (too long for a stricter column, say), the writer
    writes the others, drops that one and counts it: the batch is not kept and retried forever."""
    recorder = exposures.recorder(app)
    monkeypatch.setattr(gatekeeper_exposures, "COLUMN_LENGTH", 10_000)  # the check in front let it through
    with app.app_context():
        db.session.execute(text("DROP TABLE gatekeeper_exposure_units"))
        db.session.execute(
            text(
                "CREATE TABLE gatekeeper_exposure_units (flag VARCHAR(200) NOT NULL, variant VARCHAR(200) "
                "NOT NULL, day INTEGER NOT NULL, unit VARCHAR(200) NOT NULL CHECK (length(unit) <= 200), "
                "PRIMARY KEY (flag, variant, day, unit))"
            )
        )
        db.session.commit()
        recorder._add([Evaluation("CONSTANT", "A", "rule")], "anon:" + "x" * 300)
        recorder._add([Evaluation("CONSTANT", "A", "rule")], "user 7")
        assert recorder.flush() == 2  # the count (two exposures) and user 7's unit
    assert recorder.pending == 0
    assert recorder.dropped == 1
    assert stored_exposures(app, "CONSTANT") == 2
    assert stored_units(app, "CONSTANT") == ["user 7"]
