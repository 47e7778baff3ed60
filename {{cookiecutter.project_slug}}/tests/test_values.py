"""Variant values: each variant carries a JSON value, read with `request.gk.value()` / `gk.value()`, and an
admin replaces one at runtime (dashboard, `flask gk value`), checked by type and VALUE_SCHEMA, audited,
undoable, schedulable, and served from the snapshot."""

from __future__ import annotations

import json

import pytest
from flask import Flask, request

from {{ cookiecutter.package_name }} import gatekeeper
from {{ cookiecutter.package_name }}.gatekeeper import FeatureFlagConfig, FlagConfigError, Gatekeeper
from {{ cookiecutter.package_name }}.gatekeeper_config import FF_CONFIG_MAP, WelcomeMessageFFConfig
from {{ cookiecutter.package_name }}.gatekeeper_control.schedules import scheduler
from {{ cookiecutter.package_name }}.gatekeeper_control.store import store
from tests.store_helpers import audit_log, count_queries, snapshot

WELCOME = WelcomeMessageFFConfig.VALUES["STANDARD"]


class UploadLimitFFConfig(FeatureFlagConfig):
    FLAG_NAME = "UPLOAD_LIMIT"
    VARIANTS_ENUM_STR = "SMALL LARGE"
    DEFAULT_VARIANT = "SMALL"
    VALUES = {"SMALL": 5, "LARGE": 50}  # noqa: RUF012 (read only)
    VALUE_SCHEMA = {"type": "integer", "minimum": 1, "maximum": 100}  # noqa: RUF012


@pytest.fixture
def upload_limit(monkeypatch):
    """The app also has UPLOAD_LIMIT (whole numbers from 1 to 100) until the test ends."""
    monkeypatch.setitem(FF_CONFIG_MAP, "UPLOAD_LIMIT", UploadLimitFFConfig())


@pytest.fixture
def admin_client(client, admin, login):
    login(client, admin)
    return client


def gk(runner, *args):
    return runner.invoke(args=["gk", *args])


def value_for(app, flag, user_id=None):
    with app.app_context():
        return Gatekeeper(user_id=user_id).value(flag)


def welcome_banner(client) -> str:
    page = client.get("/").get_data(as_text=True)
    start = page.index('id="welcome-message"')
    return page[page.index(">", start) + 1 : page.index("</p>", start)]


# --- Values in code --------------------------------------------------------------------------------------


def test_value_is_that_of_the_variant_the_user_gets(app, force_flag, upload_limit):
    """UPLOAD_LIMIT gives SMALL (5) by default; forced to LARGE, its value is 50."""
    assert value_for(app, "UPLOAD_LIMIT") == 5
    force_flag("UPLOAD_LIMIT", "LARGE")
    assert value_for(app, "UPLOAD_LIMIT") == 50


def test_a_flag_without_values_has_its_variant_names_as_values(app, force_flag):
    """MY_NEW_FEATURE declares no VALUES: its value is the variant's name."""
    force_flag("MY_NEW_FEATURE", "VISIBLE")
    assert value_for(app, "MY_NEW_FEATURE") == "VISIBLE"


def test_an_unknown_flag_gives_the_default_in_production(make_app):
    """`value("NOPE", default)` answers the default outside debug and testing, as `ff()` answers False."""
    app = make_app(TESTING=False)
    with app.app_context():
        assert Gatekeeper().value("NOPE", default=3) == 3  # gk: ignore (unknown on purpose)


def test_templates_read_a_value_with_gk_value(client):
    """The home page shows WELCOME_MESSAGE's text through `gk.value()`."""
    assert welcome_banner(client) == WELCOME


def test_views_read_a_value_with_request_gk_value(app):
    """In a request, `request.gk.value(FLAG)` is the value for the request's user."""
    with app.test_request_context("/"):
        app.preprocess_request()
        assert request.gk.value("WELCOME_MESSAGE") == WELCOME


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"ON": 1, "OFF": 0.5}, "LIMIT: VALUES mixes float and integer (ON: integer, OFF: float)"),
        ({"ON": 1}, "LIMIT: VALUES must give a value to each of ON, OFF; missing OFF"),
        ({"ON": 1, "OFF": 2, "MAYBE": 3}, "no variant MAYBE"),
        ({"ON": {1, 2}, "OFF": {3}}, "LIMIT: VALUES['ON'] is {1, 2}, not a JSON value"),
        ({"ON": float("nan"), "OFF": 1.0}, "not a JSON value"),
    ],
)
def test_bad_values_in_code_fail_at_start_naming_the_flag_and_the_fix(values, message):
    """VALUES must give every variant one JSON value, all of one type."""
    body = {"FLAG_NAME": "LIMIT", "VARIANTS_ENUM_STR": "ON OFF", "VALUES": values}
    with pytest.raises(FlagConfigError) as raised:
        type("LimitFFConfig", (FeatureFlagConfig,), body)()
    assert message in str(raised.value)


def test_values_in_code_must_fit_the_value_schema():
    """A code value outside VALUE_SCHEMA fails at start (`init_app`), in jsonschema's words."""
    body = {"FLAG_NAME": "LIMIT", "VARIANTS_ENUM_STR": "ON OFF", "VALUES": {"ON": 500, "OFF": 5}}
    body["VALUE_SCHEMA"] = {"type": "integer", "maximum": 100}
    config = type("LimitFFConfig", (FeatureFlagConfig,), body)()
    with pytest.raises(
        FlagConfigError, match=r"LIMIT: VALUES\['ON'\] does not fit VALUE_SCHEMA: 500 is greater"
    ):
        gatekeeper.init_app(Flask(__name__), {"LIMIT": config})


# --- Values at runtime -----------------------------------------------------------------------------------


def test_changing_the_sample_text_with_the_cli_changes_the_home_page(app, client, runner):
    """`flask gk value WELCOME_MESSAGE STANDARD "..."` replaces the banner without a deploy."""
    result = gk(runner, "value", "WELCOME_MESSAGE", "STANDARD", '"Hello from the CLI"')
    assert result.exit_code == 0, result.output
    assert 'WELCOME_MESSAGE: STANDARD now carries "Hello from the CLI"' in result.output
    assert welcome_banner(client) == "Hello from the CLI"


def test_a_text_flag_takes_plain_text_without_quotes(app, client, runner):
    """For a flag of text values, `Hello there` is the text itself."""
    gk(runner, "value", "WELCOME_MESSAGE", "STANDARD", "Hello there")
    assert welcome_banner(client) == "Hello there"


def test_clear_goes_back_to_the_value_in_code(app, client, runner):
    """`--clear` removes the stored value; the code's serves again."""
    gk(runner, "value", "WELCOME_MESSAGE", "STANDARD", "Hi")
    result = gk(runner, "value", "WELCOME_MESSAGE", "STANDARD", "--clear")
    assert result.exit_code == 0
    assert welcome_banner(client) == WELCOME
    assert snapshot(app).values == {}


def test_a_stored_value_is_audited_with_before_and_after(app, runner, upload_limit):
    """Each change records the value before and after, as JSON."""
    gk(runner, "value", "UPLOAD_LIMIT", "LARGE", "60")
    gk(runner, "value", "UPLOAD_LIMIT", "LARGE", "70", "--reason", "bigger files")
    newest, first = audit_log(app, "UPLOAD_LIMIT")
    assert (first.action, first.target, first.before, first.after) == ("value", "LARGE", None, "60")
    assert (newest.before, newest.after, newest.reason) == ("60", "70", "bigger files")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('"fifty"', "UPLOAD_LIMIT LARGE: '\"fifty\"' is text, but UPLOAD_LIMIT's values are whole numbers"),
        ("fifty", "'fifty' is not JSON; UPLOAD_LIMIT's values are whole numbers, e.g. 50"),
        ("2.5", "is a number, but UPLOAD_LIMIT's values are whole numbers"),
        ("500", "does not fit UPLOAD_LIMIT's VALUE_SCHEMA: 500 is greater than the maximum of 100"),
    ],
)
def test_a_value_of_the_wrong_type_or_outside_the_schema_is_refused(app, runner, upload_limit, text, message):
    """A value is checked against the flag's type and VALUE_SCHEMA; refused, it writes nothing."""
    result = gk(runner, "value", "UPLOAD_LIMIT", "LARGE", text)
    assert result.exit_code != 0
    assert message in result.output
    assert snapshot(app).values == {}
    assert audit_log(app) == []


def test_an_unknown_variant_is_refused(app, runner):
    result = gk(runner, "value", "WELCOME_MESSAGE", "WINTER", "Hi")
    assert result.exit_code != 0
    assert "WELCOME_MESSAGE has no variant 'WINTER': use one of STANDARD, SALE" in result.output


def test_a_whole_number_for_a_flag_of_numbers_is_stored_as_a_number(app, runner, monkeypatch):
    """`1` for a flag of floats is 1.0, so the flag keeps one type."""
    body = {"FLAG_NAME": "RATIO", "VARIANTS_ENUM_STR": "ON OFF", "VALUES": {"ON": 0.5, "OFF": 0.0}}
    monkeypatch.setitem(FF_CONFIG_MAP, "RATIO", type("RatioFFConfig", (FeatureFlagConfig,), body)())
    gk(runner, "value", "RATIO", "OFF", "1")
    assert value_for(app, "RATIO") == 1.0
    assert isinstance(value_for(app, "RATIO"), float)


def test_undoing_a_value_change_restores_the_value_before(app, runner, admin_client):
    """The audit log's undo puts the previous value back, as a new audited change."""
    gk(runner, "value", "WELCOME_MESSAGE", "STANDARD", "One")
    gk(runner, "value", "WELCOME_MESSAGE", "STANDARD", "Two")
    newest = audit_log(app)[0]
    admin_client.post(f"/gatekeeper/audit/{newest.id}/undo")
    assert welcome_banner(admin_client) == "One"
    undo = audit_log(app)[0]
    assert (undo.action, undo.before, undo.after) == ("value", '"Two"', '"One"')


def test_undoing_the_first_value_goes_back_to_the_code(app, runner, admin_client):
    gk(runner, "value", "WELCOME_MESSAGE", "STANDARD", "One")
    admin_client.post(f"/gatekeeper/audit/{audit_log(app)[0].id}/undo")
    assert welcome_banner(admin_client) == WELCOME
    assert audit_log(app)[0].action == "clear_value"


def test_a_value_change_can_be_scheduled(app, client, runner):
    """`flask gk schedule FLAG WHEN value VARIANT JSON` changes the text when it is due."""
    result = gk(runner, "schedule", "WELCOME_MESSAGE", "+1h", "value", "STANDARD", '"Later text"')
    assert result.exit_code == 0, result.output
    assert welcome_banner(client) == WELCOME
    with app.app_context():
        [pending] = scheduler.schedules(pending_only=True)
        state = app.extensions["gatekeeper_store"]
        state.now = lambda: pending.due_at
        store.snapshot(max_age=0)
    assert welcome_banner(client) == "Later text"


def test_a_scheduled_value_is_checked_when_scheduled(app, runner, upload_limit):
    result = gk(runner, "schedule", "UPLOAD_LIMIT", "+1h", "value", "LARGE", "fifty")
    assert result.exit_code != 0
    assert "is not JSON" in result.output


def test_reading_values_makes_no_query(app, client, runner):
    """Stored values come from the snapshot: a page that reads one runs no SQL."""
    gk(runner, "value", "WELCOME_MESSAGE", "STANDARD", "Cached")
    client.get("/")  # the first request may refresh the snapshot
    with count_queries(app) as statements:
        assert welcome_banner(client) == "Cached"
    assert statements == []


def test_a_stored_value_whose_type_changed_in_code_is_stale(app, runner, monkeypatch, admin_client):
    """A value stored while the flag held text, after the code made it a number: the code's value
    serves, and the flag page lists the stored one as stale."""
    gk(runner, "value", "WELCOME_MESSAGE", "STANDARD", "Hi")
    body = {
        "FLAG_NAME": "WELCOME_MESSAGE",
        "VARIANTS_ENUM_STR": "STANDARD SALE",
        "DEFAULT_VARIANT": "STANDARD",
    }
    body["VALUES"] = {"STANDARD": 1, "SALE": 2}
    monkeypatch.setitem(
        FF_CONFIG_MAP, "WELCOME_MESSAGE", type("NumbersFFConfig", (FeatureFlagConfig,), body)()
    )
    assert value_for(app, "WELCOME_MESSAGE") == 1
    page = admin_client.get("/gatekeeper/flags/WELCOME_MESSAGE").get_data(as_text=True)
    assert (
        "stale</span> value of <code>STANDARD</code>: "
        "WELCOME_MESSAGE&#39;s values are now whole numbers" in page
    )


# --- The dashboard ---------------------------------------------------------------------------------------


def test_the_flag_page_shows_each_variants_value(admin_client):
    page = admin_client.get("/gatekeeper/flags/WELCOME_MESSAGE").get_data(as_text=True)
    assert 'aria-label="Value of STANDARD"' in page
    assert "Spring sale: everything is 20% off this week." in page


def test_an_admin_changes_the_text_on_the_flag_page(app, admin_client):
    """Saving a value on the flag page changes the home page at once, audited as the admin."""
    response = admin_client.post(
        "/gatekeeper/flags/WELCOME_MESSAGE/values",
        data={"variant": "STANDARD", "value": "From the dashboard"},
    )
    assert response.status_code == 302
    assert welcome_banner(admin_client) == "From the dashboard"
    assert audit_log(app)[0].actor == "admin@example.com"


def test_a_refused_value_on_the_flag_page_says_why(app, admin_client, upload_limit):
    response = admin_client.post(
        "/gatekeeper/flags/UPLOAD_LIMIT/values", data={"variant": "LARGE", "value": "[1]"}
    )
    assert response.status_code == 422
    assert "is a list, but UPLOAD_LIMIT&#39;s values are whole numbers" in response.text
    assert 'value="[1]"' in response.text  # what was typed is still in its box
    assert snapshot(app).values == {}


def test_back_to_code_on_the_flag_page(app, admin_client):
    admin_client.post(
        "/gatekeeper/flags/WELCOME_MESSAGE/values", data={"variant": "SALE", "value": "50% off"}
    )
    admin_client.post("/gatekeeper/flags/WELCOME_MESSAGE/values", data={"variant": "SALE", "clear": "yes"})
    assert snapshot(app).values == {}
    assert json.loads(audit_log(app)[0].before) == "50% off"
