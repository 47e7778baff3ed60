"""The blog post's API works unchanged, without the blog post's bugs."""

import json

import pytest
from flask import request, session

from {{ cookiecutter.package_name }} import gatekeeper
from {{ cookiecutter.package_name }}.gatekeeper import FeatureFlagConfig, Gatekeeper, initialize_gatekeeper
from tests.bare_app import ADMIN, MEMBER, cookies_set, log_in, make_app, override_cookie


class SeedFeatureFFConfig(FeatureFlagConfig):
    """Declared exactly as the seed declares MyNewFeatureFFConfig: no DEFAULT_VARIANT."""

    FLAG_NAME = "MY_NEW_FEATURE"
    VARIANTS_ENUM_STR = "VISIBLE NOT_VISIBLE"
    DESCRIPTION = "Gate visibility of my new feature during development"

    def _get_variant(self, user_id=None, app=None, request=None, session=None):
        if (app and app.config.get("IS_DEV")) or (user_id and user_id in [1, 2, 3]):
            return self.variants_enum.VISIBLE
        else:
            return self.variants_enum.NOT_VISIBLE


@pytest.fixture
def seed_app():
    return make_app({"MY_NEW_FEATURE": SeedFeatureFFConfig(overrides={"VISIBLE": [7]})})


def test_seed_config_is_accepted_and_defaults_to_its_last_variant():
    """A config without DEFAULT_VARIANT serves its last variant when its rule fails."""
    assert SeedFeatureFFConfig().default_variant == "NOT_VISIBLE"


def test_request_gk_ff_in_a_view(seed_app):
    """`request.gk.ff('MY_NEW_FEATURE', 'VISIBLE')` answers per user, as in the post."""
    client = seed_app.test_client()
    assert client.get("/ff?flag=MY_NEW_FEATURE&variant=VISIBLE").text == "False"
    log_in(client, ADMIN)
    assert client.get("/ff?flag=MY_NEW_FEATURE&variant=VISIBLE").text == "True"


def test_request_gk_ff_in_jinja(seed_app):
    """`request.gk.ff(...)` works inside a Jinja `if` in templates."""
    client = seed_app.test_client()
    log_in(client, ADMIN)
    assert client.get("/template/MY_NEW_FEATURE/VISIBLE").text == "True VISIBLE True"


def test_feature_flag_ff_variant_and_get_feature_flag_variant(seed_app):
    """The seed's long names work, and get_feature_flag_variant no longer needs a user_id_override."""
    with seed_app.test_request_context():
        gk = initialize_gatekeeper(user_id=2, app=seed_app)
        assert gk.feature_flag("MY_NEW_FEATURE", "VISIBLE") is True
        assert gk.ff_variant("MY_NEW_FEATURE") == "VISIBLE"
        assert gk.get_feature_flag_variant("MY_NEW_FEATURE") == "VISIBLE"
        assert gk.get_feature_flag_variant("MY_NEW_FEATURE", 99) == "NOT_VISIBLE"
        assert set(gk.get_config_map()) == {"MY_NEW_FEATURE"}


def test_code_overrides_pin_users(seed_app):
    """`overrides={'VISIBLE': [7]}` shows the feature to user 7, whom the rule would not."""
    with seed_app.app_context():
        assert Gatekeeper(user_id=7, app=seed_app).explain("MY_NEW_FEATURE").reason == "user_override"
        assert Gatekeeper(user_id=8, app=seed_app).ff("MY_NEW_FEATURE", "VISIBLE") is False


def test_is_dev_config_shows_the_feature_to_everyone(seed_app):
    """The seed's rule reads app.config['IS_DEV']."""
    seed_app.config["IS_DEV"] = True
    assert seed_app.test_client().get("/ff?flag=MY_NEW_FEATURE&variant=VISIBLE").text == "True"


def test_set_browser_override_variant_returns_a_response_with_a_signed_cookie(seed_app):
    """The seed's setter still returns a response; its cookie is now signed, not plain JSON."""
    with seed_app.test_request_context():
        gk = initialize_gatekeeper(app=seed_app)
        response = gk.set_browser_override_variant(request, "MY_NEW_FEATURE", "VISIBLE")
    value = cookies_set(response)[gatekeeper.OVERRIDE_COOKIE].value
    with pytest.raises(ValueError):
        json.loads(value)


def test_get_browser_override_variants_reads_the_cookie_back(seed_app):
    """An admin's browser override set through the seed's API is read back by the seed's getter."""
    client = seed_app.test_client()
    log_in(client, ADMIN)
    with seed_app.test_request_context():
        response = initialize_gatekeeper(app=seed_app).set_browser_override_variant(
            request, "MY_NEW_FEATURE", "NOT_VISIBLE"
        )
    client.set_cookie(gatekeeper.OVERRIDE_COOKIE, cookies_set(response)[gatekeeper.OVERRIDE_COOKIE].value)
    assert client.get("/explain/MY_NEW_FEATURE").text == "NOT_VISIBLE browser_override"


def test_the_seeds_plain_json_cookie_is_ignored_not_a_crash(seed_app):
    """The seed trusted `{"FLAG": "VARIANT"}` from anyone and crashed on bad JSON; both are now ignored."""
    client = seed_app.test_client()
    log_in(client, ADMIN)
    client.set_cookie(gatekeeper.OVERRIDE_COOKIE, json.dumps({"MY_NEW_FEATURE": "NOT_VISIBLE"}))
    assert client.get("/explain/MY_NEW_FEATURE").text == "VISIBLE rule"
    client.set_cookie(gatekeeper.OVERRIDE_COOKIE, "{not json")
    assert client.get("/explain/MY_NEW_FEATURE").status_code == 200


def test_unknown_flag_no_longer_returns_none_silently_in_development(seed_app):
    """The seed returned None for a typo; in testing and debug it now raises with the fix."""
    with seed_app.app_context(), pytest.raises(gatekeeper.UnknownFlagError, match="FF_CONFIG_MAP"):
        Gatekeeper(app=seed_app).get_feature_flag_variant("MY_NEW_FEATUR")  # gk: ignore (a typo on purpose)


@pytest.fixture
def seed_config(seed_app):
    return seed_app.extensions["gatekeeper"].config_map["MY_NEW_FEATURE"]


def test_config_get_variant_answers_from_code_overrides_then_the_rule(seed_app, seed_config):
    """The seed's `config.get_variant(user_id=...)` still returns a member of the config's enum."""
    with seed_app.app_context():
        assert seed_config.get_variant(user_id=2, app=seed_app) is seed_config.variants_enum.VISIBLE
        assert seed_config.get_variant(user_id=7, app=seed_app).name == "VISIBLE"  # overrides in code
        assert seed_config.get_variant(user_id=42, app=seed_app).name == "NOT_VISIBLE"
        assert seed_config.get_override_variant(user_id=42) is None


def test_config_level_browser_override_api_reads_an_admins_cookie(seed_app, seed_config):
    """`config.get_variant(request=...)` and `get_browser_override_variant(s)` honour an admin's cookie."""
    cookie = override_cookie(seed_app, {"MY_NEW_FEATURE": "NOT_VISIBLE"})
    with seed_app.test_request_context(headers={"Cookie": f"{gatekeeper.OVERRIDE_COOKIE}={cookie}"}):
        session["uid"] = ADMIN.id
        assert seed_config.get_variant(user_id=2, app=seed_app, request=request).name == "NOT_VISIBLE"
        assert seed_config.get_browser_override_variants(request) == {"MY_NEW_FEATURE": "NOT_VISIBLE"}
        assert seed_config.get_browser_override_variant(request).name == "NOT_VISIBLE"


def test_config_level_browser_override_api_ignores_a_non_admins_cookie(seed_app, seed_config):
    """The same signed cookie in a non-admin's browser changes nothing."""
    cookie = override_cookie(seed_app, {"MY_NEW_FEATURE": "VISIBLE"})
    with seed_app.test_request_context(headers={"Cookie": f"{gatekeeper.OVERRIDE_COOKIE}={cookie}"}):
        session["uid"] = MEMBER.id
        assert seed_config.get_variant(user_id=MEMBER.id, app=seed_app, request=request).name == "NOT_VISIBLE"
        assert seed_config.get_browser_override_variant(request) is None


def test_config_set_browser_override_variant_sets_clears_and_checks_the_variant(seed_app, seed_config):
    """Setting writes a signed cookie, '' clears it, and a variant the flag lacks is refused."""
    with seed_app.test_request_context():
        set_cookie = cookies_set(seed_config.set_browser_override_variant(request, "VISIBLE"))
        cleared = cookies_set(seed_config.set_browser_override_variant(request, ""))
        with pytest.raises(gatekeeper.UnknownFlagError, match="MAYBE"):
            seed_config.set_browser_override_variant(request, "MAYBE")
    assert set_cookie[gatekeeper.OVERRIDE_COOKIE].value
    assert set_cookie[gatekeeper.OVERRIDE_COOKIE]["httponly"]
    assert cleared[gatekeeper.OVERRIDE_COOKIE]["max-age"] == "0"


def test_set_browser_override_variant_for_an_unknown_flag_answers_none(seed_app):
    """As in the seed, asking the Gatekeeper to override a flag it does not know gives None."""
    with seed_app.test_request_context():
        assert initialize_gatekeeper(app=seed_app).set_browser_override_variant(request, "NOPE", "ON") is None
