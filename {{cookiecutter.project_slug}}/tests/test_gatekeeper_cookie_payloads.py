"""The override cookie never causes an error, whatever a validly signed value holds."""

import pytest
from itsdangerous import URLSafeSerializer, URLSafeTimedSerializer

from {{ cookiecutter.package_name }}.gatekeeper import OVERRIDE_COOKIE
from tests.bare_app import ADMIN, log_in, make_app

SALT = "gatekeeper-browser-overrides"  # the engine's; an attacker who knows SECRET_KEY knows it too
SECRET = "bare-app-secret"


@pytest.fixture
def client():
    client = make_app().test_client()
    log_in(client, ADMIN)
    return client


def test_a_timed_token_signed_with_the_apps_secret_is_ignored(client):
    """A URLSafeTimedSerializer token (valid signature, payload of another shape) is ignored, not a 500."""
    client.set_cookie(OVERRIDE_COOKIE, URLSafeTimedSerializer(SECRET, salt=SALT).dumps({"ON_OFF": "ON"}))
    response = client.get("/explain/ON_OFF")
    assert response.status_code == 200
    assert response.text == "OFF rule"


@pytest.mark.parametrize(
    "payload",
    [["ON_OFF", "ON"], "ON", 42, None, {"ON_OFF": ["ON"]}, {"ON_OFF": {"x": 1}}, {"": "ON"}],
    ids=repr,
)
def test_a_signed_payload_that_is_not_a_map_of_flags_to_variants_is_ignored(client, payload):
    """Lists, strings, numbers, nested values: a correctly signed cookie of any shape changes nothing."""
    client.set_cookie(OVERRIDE_COOKIE, URLSafeSerializer(SECRET, salt=SALT).dumps(payload))
    response = client.get("/explain/ON_OFF")
    assert response.status_code == 200
    assert response.text == "OFF rule"


@pytest.mark.parametrize("body", [".", "..", "e30.", "!!!.", "eJwDAAAAAAE."], ids=repr)
def test_a_signed_value_that_does_not_decode_is_ignored(client, body):
    """Text that carries a valid signature but is not base64 JSON (or compressed JSON) is ignored."""
    signer = URLSafeSerializer(SECRET, salt=SALT).make_signer(SALT)
    client.set_cookie(OVERRIDE_COOKIE, signer.sign(body.rstrip(".")).decode())
    response = client.get("/explain/ON_OFF")
    assert response.status_code == 200
    assert response.text == "OFF rule"
