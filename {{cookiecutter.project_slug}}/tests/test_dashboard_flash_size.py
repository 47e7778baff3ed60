"""Flash messages quote what an admin typed, cut short: no form input can make the session cookie too big."""

import random
import string

import pytest

FLAG_PAGE = "/gatekeeper/flags/MY_NEW_FEATURE"
# Bytes per cookie that browsers keep: a bigger one is dropped, or makes the next request fail with 431.
BROWSER_COOKIE_LIMIT = 4093


def session_cookie_size(response):
    """The length of the Set-Cookie header that carries the session (0 when the response sets none)."""
    headers = [h for h in response.headers.getlist("Set-Cookie") if h.startswith("session=")]
    return max((len(header) for header in headers), default=0)


def noise(length, alphabet, seed=10):
    """`length` characters from `alphabet`, random but the same on every run (they compress badly)."""
    rng = random.Random(seed)
    return "".join(rng.choice(alphabet) for _ in range(length))


@pytest.fixture
def admin_client(client, admin, login):
    login(client, admin)
    client.post(f"{FLAG_PAGE}/users", data={"user": admin.email, "variant": "VISIBLE"})
    return client


@pytest.mark.parametrize(
    "field",
    [
        pytest.param(lambda email: noise(20_000, string.whitespace) + email, id="whitespace-padded-email"),
        pytest.param(lambda email: noise(20_000, string.printable), id="20000-characters"),
    ],
)
def test_a_huge_user_field_gives_a_small_session_cookie(admin_client, admin, field):
    """A 20,000-character user field (even one that still names a user) flashes a bounded message."""
    response = admin_client.post(
        f"{FLAG_PAGE}/users", data={"user": field(admin.email), "variant": "VISIBLE"}
    )
    assert response.status_code in {302, 422}  # 422: refused, with the message on the page, not in the cookie
    assert session_cookie_size(response) < BROWSER_COOKIE_LIMIT
    assert admin_client.get(FLAG_PAGE).status_code == 200


@pytest.mark.parametrize("path", ["/users", "/force", "/browser-override"])
def test_a_huge_variant_gives_a_small_session_cookie(admin_client, admin, path):
    """A 20,000-character variant, on any of the flag page's forms, flashes a bounded message."""
    data = {"user": admin.email, "variant": noise(20_000, string.printable), "confirm": "yes"}
    response = admin_client.post(f"{FLAG_PAGE}{path}", data=data)
    assert response.status_code in {302, 422}
    assert session_cookie_size(response) < BROWSER_COOKIE_LIMIT
