"""Fuzzing through the test client: no cookie and no flag question ever produces a 500."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from {{ cookiecutter.package_name }}.gatekeeper import ANONYMOUS_COOKIE, OVERRIDE_COOKIE
from tests.bare_app import ADMIN, log_in, make_app, override_cookie

APP = make_app(testing=False)
COOKIE_TEXT = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters=';,"\\'))
SETTINGS = settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def admin_client():
    client = APP.test_client()
    log_in(client, ADMIN)
    return client


@SETTINGS
@given(
    value=COOKIE_TEXT | st.builds(lambda d: override_cookie(APP, d), st.dictionaries(st.text(), st.text()))
)
def test_any_override_cookie_gives_a_page(value):
    """Random and randomly signed override cookies never break a page; junk never overrides."""
    client = admin_client()
    client.set_cookie(OVERRIDE_COOKIE, value)
    client.set_cookie(ANONYMOUS_COOKIE, value[:64])
    response = client.get("/explain/ON_OFF")
    assert response.status_code == 200
    assert response.text in {"OFF rule", "ON browser_override", "OFF browser_override"}
    assert client.get("/explain/HALF").status_code == 200


@SETTINGS
@given(flag=st.text() | st.sampled_from(["ON_OFF", "HALF", "BROKEN"]), variant=st.text() | st.just("ON"))
def test_any_flag_question_gives_an_answer(flag, variant):
    """In production, `ff()` with any flag and variant answers True or False, never a 500."""
    response = APP.test_client().get("/ff", query_string={"flag": flag, "variant": variant})
    assert response.status_code == 200
    assert response.text in {"True", "False"}
