"""OpenTelemetry: each flag a request asks for adds one `feature_flag.evaluation` event to the current span,
with the semantic conventions' attributes; nothing when the setting is off or the package is absent.

The SDK's in-memory exporter stands in for a collector; the span stands in for the request span that an
instrumentation (opentelemetry-instrumentation-flask) would open.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask, jsonify, request
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from {{ cookiecutter.package_name }}.gatekeeper import Gatekeeper
from {{ cookiecutter.package_name }}.gatekeeper_control.store import store

EVENT = "feature_flag.evaluation"


class Traced:
    """A tracer whose finished spans land in memory."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.tracer = provider.get_tracer("tests")

    def events(self) -> list[dict[str, object]]:
        """The attributes of every flag evaluation event, in the order they were added."""
        return [
            dict(event.attributes or {})
            for span in self.exporter.get_finished_spans()
            for event in span.events
            if event.name == EVENT
        ]


@pytest.fixture
def traced() -> Traced:
    return Traced()


def add_flag_page(app: Flask) -> None:
    """/_flags?ask=FLAG&ask=FLAG...: asks `ff()` for each flag named, in order, twice over."""

    @app.get("/_flags")
    def flags():
        asked = request.args.getlist("ask")
        answers = [request.gk.ff_variant(flag) for flag in asked + asked]
        return jsonify(answers)


def get_in_a_span(traced: Traced, app: Flask, query: str) -> list[str]:
    with traced.tracer.start_as_current_span("GET /_flags"):
        return app.test_client().get(f"/_flags?{query}").json


def test_each_flag_a_request_asks_for_adds_one_event(app, traced, force_flag):
    """Asked twice in one request, a flag adds one event (its first evaluation); another flag adds its own."""
    add_flag_page(app)
    force_flag("NEW_CHECKOUT", "ON")
    get_in_a_span(traced, app, "ask=MY_NEW_FEATURE&ask=NEW_CHECKOUT&ask=MY_NEW_FEATURE")
    assert [event["feature_flag.key"] for event in traced.events()] == ["MY_NEW_FEATURE", "NEW_CHECKOUT"]


def test_an_event_carries_the_semantic_convention_attributes(app, traced, force_flag):
    """Flag key, variant, OpenFeature's reason code and the provider's name, and gatekeeper's own reason."""
    add_flag_page(app)
    force_flag("NEW_CHECKOUT", "ON")
    get_in_a_span(traced, app, "ask=NEW_CHECKOUT")
    assert traced.events() == [
        {
            "feature_flag.key": "NEW_CHECKOUT",
            "feature_flag.result.variant": "ON",
            "feature_flag.result.reason": "static",
            "feature_flag.provider.name": "gatekeeper",
            "gatekeeper.reason": "forced",
        }
    ]


def test_reasons_map_to_openfeature_reason_codes(app, traced):
    """A rule calling rollout() is a split, a plain rule a targeting match, a flag switched off disabled."""
    add_flag_page(app)
    with app.app_context():
        store.switch_off("WELCOME_MESSAGE", actor="test")
    get_in_a_span(traced, app, "ask=HOMEPAGE_EXPERIMENT&ask=MY_NEW_FEATURE&ask=WELCOME_MESSAGE")
    reasons = {event["feature_flag.key"]: event["feature_flag.result.reason"] for event in traced.events()}
    assert reasons == {
        "HOMEPAGE_EXPERIMENT": "split",
        "MY_NEW_FEATURE": "targeting_match",
        "WELCOME_MESSAGE": "disabled",
    }


def test_a_job_outside_requests_records_on_its_own_span(app, traced):
    """A worker's task span (no request at all) gets the events of the flags the task asks for."""
    with traced.tracer.start_as_current_span("task"), app.app_context():
        Gatekeeper(user_id="42").ff("MY_NEW_FEATURE", "VISIBLE")
    assert [event["feature_flag.key"] for event in traced.events()] == ["MY_NEW_FEATURE"]


def test_no_recording_span_no_events_and_the_same_answers(app, traced):
    """With no span current (nothing instrumented, or sampled out) flags answer as always."""
    add_flag_page(app)
    assert app.test_client().get("/_flags?ask=MY_NEW_FEATURE").json == ["NOT_VISIBLE", "NOT_VISIBLE"]
    assert traced.events() == []


@pytest.fixture
def app_without_telemetry(make_app) -> Iterator[Flask]:
    yield make_app(GATEKEEPER_OPENTELEMETRY=False)


def test_the_setting_off_records_nothing(app_without_telemetry, traced):
    """GATEKEEPER_OPENTELEMETRY=False: no events, whatever spans are current."""
    add_flag_page(app_without_telemetry)
    assert get_in_a_span(traced, app_without_telemetry, "ask=MY_NEW_FEATURE") == ["NOT_VISIBLE"] * 2
    assert traced.events() == []


def test_without_opentelemetry_installed_the_app_serves_flags_as_always(tmp_path):
    """With the package absent (its import blocked here) the app starts, flags answer, nothing is hooked."""
    script = (
        "import sys\n"
        "sys.modules['opentelemetry'] = None  # as if not installed: importing it raises ImportError\n"
        "from {{ cookiecutter.package_name }} import create_app, database, gatekeeper\n"
        "from {{ cookiecutter.package_name }}.gatekeeper_control import telemetry\n"
        "app = create_app(dict(TESTING=True, SECRET_KEY='x',\n"
        f"    SQLALCHEMY_DATABASE_URI='sqlite:///{tmp_path / 'app.db'}'))\n"
        "with app.app_context():\n"
        "    database.init_db()\n"
        "assert not telemetry.available()\n"
        "assert not gatekeeper.flag_evaluated.receivers\n"
        "assert app.test_client().get('/').status_code == 200\n"
    )
    project = Path(__file__).resolve().parent.parent
    subprocess.run([sys.executable, "-c", script], cwd=project, check=True, timeout=60)
