"""OpenTelemetry: each flag a request asks for adds one `feature_flag.evaluation` event to the current span,
with the semantic conventions' attributes; nothing when the setting is off or the package is absent.

The SDK's in-memory exporter stands in for a collector; the span stands in for the request span that an
instrumentation (opentelemetry-instrumentation-flask) would open.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from flask import Flask, jsonify, request
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from {{ cookiecutter.package_name }}.gatekeeper import Gatekeeper, forced_variant
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


def add_flag_page(app: Flask) -> Flask:
    """/_flags?ask=FLAG&ask=FLAG...: asks `ff()` for each flag named, in order, twice over."""

    @app.get("/_flags")
    def flags():
        asked = request.args.getlist("ask")
        answers = [request.gk.ff_variant(flag) for flag in asked + asked]
        return jsonify(answers)

    return app


@pytest.fixture(scope="module")
def flag_app(module_app) -> Flask:
    """One app with the flag page for the module's tests (each forces only within itself)."""
    return add_flag_page(module_app)


def get_in_a_span(traced: Traced, app: Flask, query: str) -> list[str]:
    with traced.tracer.start_as_current_span("GET /_flags"):
        return app.test_client().get(f"/_flags?{query}").json


def test_each_flag_a_request_asks_for_adds_one_event(flag_app, traced):
    """Asked twice in one request, a flag adds one event (its first evaluation); another flag adds its own."""
    get_in_a_span(traced, flag_app, "ask=MY_NEW_FEATURE&ask=NEW_CHECKOUT&ask=MY_NEW_FEATURE")
    assert [event["feature_flag.key"] for event in traced.events()] == ["MY_NEW_FEATURE", "NEW_CHECKOUT"]


def test_an_event_carries_the_semantic_convention_attributes(flag_app, traced):
    """Flag key, variant, OpenFeature's reason code and the provider's name, and gatekeeper's own reason."""
    with forced_variant("NEW_CHECKOUT", "ON", flag_app):
        get_in_a_span(traced, flag_app, "ask=NEW_CHECKOUT")
    assert traced.events() == [
        {
            "feature_flag.key": "NEW_CHECKOUT",
            "feature_flag.result.variant": "ON",
            "feature_flag.result.reason": "static",
            "feature_flag.provider.name": "gatekeeper",
            "gatekeeper.reason": "forced",
        }
    ]


def test_reasons_map_to_openfeature_reason_codes(flag_app, traced):
    """A rule calling rollout() is a split, a plain rule a targeting match, a flag switched off disabled."""
    with flag_app.app_context():
        store.switch_off("WELCOME_MESSAGE", actor="test")
    try:
        get_in_a_span(traced, flag_app, "ask=HOMEPAGE_EXPERIMENT&ask=MY_NEW_FEATURE&ask=WELCOME_MESSAGE")
    finally:
        with flag_app.app_context():
            store.switch_on("WELCOME_MESSAGE", actor="test")
    reasons = {event["feature_flag.key"]: event["feature_flag.result.reason"] for event in traced.events()}
    assert reasons == {
        "HOMEPAGE_EXPERIMENT": "split",
        "MY_NEW_FEATURE": "targeting_match",
        "WELCOME_MESSAGE": "disabled",
    }


def test_a_job_outside_requests_records_on_its_own_span(flag_app, traced):
    """A worker's task span (no request at all) gets the events of the flags the task asks for."""
    with traced.tracer.start_as_current_span("task"), flag_app.app_context():
        Gatekeeper(user_id="42").ff("MY_NEW_FEATURE", "VISIBLE")
    assert [event["feature_flag.key"] for event in traced.events()] == ["MY_NEW_FEATURE"]


def test_no_recording_span_no_events_and_the_same_answers(flag_app, traced):
    """With no span current (nothing instrumented, or sampled out) flags answer as always."""
    assert flag_app.test_client().get("/_flags?ask=MY_NEW_FEATURE").json == ["NOT_VISIBLE", "NOT_VISIBLE"]
    assert traced.events() == []


def test_the_setting_off_records_nothing(make_app, traced):
    """GATEKEEPER_OPENTELEMETRY=False: no events, whatever spans are current."""
    app = add_flag_page(make_app(GATEKEEPER_OPENTELEMETRY=False))
    assert get_in_a_span(traced, app, "ask=MY_NEW_FEATURE") == ["NOT_VISIBLE"] * 2
    assert traced.events() == []


def test_without_opentelemetry_installed_nothing_is_hooked_and_flags_answer():
    """With the package absent (its import blocked in a fresh interpreter) nothing is registered with the
    engine, and a page's flags answer as always."""
    script = (
        "import sys\n"
        "sys.modules['opentelemetry'] = None  # as if not installed: importing it raises ImportError\n"
        "from flask import Flask, request\n"
        "from {{ cookiecutter.package_name }} import gatekeeper\n"
        "from {{ cookiecutter.package_name }}.gatekeeper_config import FF_CONFIG_MAP\n"
        "from {{ cookiecutter.package_name }}.gatekeeper_control import telemetry\n"
        "app = Flask('without_opentelemetry')\n"
        "app.config['SECRET_KEY'] = 'x'\n"
        "gatekeeper.init_app(app, FF_CONFIG_MAP)\n"
        "assert telemetry.init_app(app) is False and not telemetry.available()\n"
        "assert not app.extensions.get(gatekeeper.EVALUATED_KEY)\n"
        "app.add_url_rule('/', view_func=lambda: request.gk.ff_variant('MY_NEW_FEATURE'))\n"
        "assert app.test_client().get('/').text == 'NOT_VISIBLE'\n"
    )
    project = Path(__file__).resolve().parent.parent
    subprocess.run([sys.executable, "-c", script], cwd=project, check=True, timeout=60)
