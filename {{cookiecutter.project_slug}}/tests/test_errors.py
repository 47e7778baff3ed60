"""Error pages: in the app's look, with a way back, and never showing internals."""

import pytest


@pytest.fixture
def failing_app(make_app):
    """The app with a page that crashes, and errors handled as in production (not raised into the test)."""
    app = make_app(PROPAGATE_EXCEPTIONS=False)

    @app.get("/boom")
    def boom():
        raise RuntimeError("secret detail: password=hunter2")

    return app


def test_unknown_page_gets_the_404_page(client):
    """A URL that matches nothing answers 404 with the app's page and a link home."""
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert "Page not found" in response.text
    assert 'href="/"' in response.text


def test_crash_gets_the_500_page_without_details(failing_app):
    """An exception answers 500 with a friendly page that leaks nothing about the error."""
    response = failing_app.test_client().get("/boom")
    assert response.status_code == 500
    assert "Something went wrong" in response.text
    assert "hunter2" not in response.text
    assert "RuntimeError" not in response.text


def test_crash_is_logged_for_the_developer(failing_app, caplog):
    """What the visitor does not see goes to the log."""
    failing_app.test_client().get("/boom")
    assert "secret detail" in caplog.text
