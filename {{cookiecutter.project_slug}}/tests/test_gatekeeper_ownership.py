"""A flag's OWNER and EXPIRES: checked at start, shown by `flask gk list`, warned on by `flask gk check`, and
marked on the dashboard once the date has passed."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from {{ cookiecutter.package_name }}.gatekeeper import FeatureFlagConfig, FlagConfigError
from {{ cookiecutter.package_name }}.gatekeeper_config import FF_CONFIG_MAP


class OldBannerFFConfig(FeatureFlagConfig):
    FLAG_NAME = "OLD_BANNER"
    VARIANTS_ENUM_STR = "ON OFF"
    OWNER = "team-web"
    EXPIRES = "2020-01-31"

    def _get_variant(self, user_id=None, app=None, request=None, session=None):
        return self.variants_enum.OFF


def flag_with(**attributes) -> FeatureFlagConfig:
    """A subclass of OldBannerFFConfig with these class attributes changed, instantiated."""
    return type("ChangedFFConfig", (OldBannerFFConfig,), attributes)()


@pytest.fixture
def old_banner(app, monkeypatch):
    """The app also has OLD_BANNER, a flag that expired in 2020, until the test ends."""
    monkeypatch.setitem(FF_CONFIG_MAP, "OLD_BANNER", OldBannerFFConfig())
    return app


def test_expires_is_read_as_a_date():
    """`EXPIRES = "2020-01-31"` becomes `config.expires`, a date, and the flag is expired after it."""
    config = OldBannerFFConfig()
    assert config.expires == date(2020, 1, 31)
    assert config.is_expired()
    assert not config.is_expired(today=date(2020, 1, 31))


def test_expires_may_be_a_date_object_or_left_out():
    """A `date` is taken as it is; without EXPIRES a flag never expires."""
    assert flag_with(EXPIRES=date(2031, 5, 1)).expires == date(2031, 5, 1)
    assert flag_with(EXPIRES=None).expires is None
    assert not flag_with(EXPIRES=None).is_expired()


@pytest.mark.parametrize(
    "bad", ["2027-02-30", "01/03/2027", "2027-3-1", "next spring", 20270301, datetime(2027, 3, 1)]
)
def test_a_bad_expiry_fails_at_start_naming_the_flag_and_the_fix(bad):
    """An expiry that is not a real YYYY-MM-DD date stops the app from starting, saying how to write it."""
    with pytest.raises(FlagConfigError, match=r"OLD_BANNER: EXPIRES .* write it as YYYY-MM-DD, e.g."):
        flag_with(EXPIRES=bad)


def test_an_owner_that_is_not_text_fails_at_start():
    """OWNER names a person or team as a string."""
    with pytest.raises(FlagConfigError, match="OLD_BANNER: OWNER must be a string"):
        flag_with(OWNER=["ann", "bob"])


def test_flask_gk_list_shows_owner_and_expiry(old_banner, runner):
    """Each flag's line carries its owner and expiry, and says when the date has passed."""
    output = old_banner.test_cli_runner().invoke(args=["gk", "list"]).output
    assert "OLD_BANNER  [ON OFF]  default=OFF  owner=team-web  expires=2020-01-31 (expired)" in output
    assert "owner=growth-team  expires=2027-03-01" in output


def test_flask_gk_check_warns_on_an_expired_flag_without_failing(old_banner, tmp_path):
    """The check names the expired flag, its date and owner as a warning; the exit status stays 0."""
    (tmp_path / "views.py").write_text("gk.ff('OLD_BANNER', 'ON')\n", encoding="utf-8")
    result = old_banner.test_cli_runner().invoke(args=["gk", "check", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (
        "warning: OLD_BANNER: expired on 2020-01-31 (owner: team-web); remove it or extend EXPIRES"
        in result.output
    )


def test_dashboard_marks_the_expired_flag_in_the_list(old_banner, client, admin, login):
    """The flag list shows an "expired" mark on OLD_BANNER only."""
    login(client, admin)
    page = client.get("/gatekeeper/").text
    rows = page.split("<tr")
    (banner_row,) = [row for row in rows if "flags/OLD_BANNER" in row]
    assert 'class="gk-chip gk-chip-expired" title="expired on 2020-01-31">expired' in banner_row
    assert sum("gk-chip-expired" in row for row in rows) == 1


def test_flag_page_shows_owner_expiry_and_the_expired_mark(old_banner, client, admin, login):
    """A flag's page says who owns it, when it expires, and that it has."""
    login(client, admin)
    page = client.get("/gatekeeper/flags/OLD_BANNER").text
    assert "Owner: <strong>team-web</strong>" in page
    assert "Expires 2020-01-31" in page
    assert "gk-chip-expired" in page
    sample = client.get("/gatekeeper/flags/HOMEPAGE_EXPERIMENT").text
    assert "Owner: <strong>growth-team</strong>" in sample


@pytest.mark.parametrize(
    ("tags", "problem"),
    [
        ("beta", "TAGS must be a tuple of words"),
        (("beta", "two words"), "TAGS holds 'two words'"),
        (("beta", 7), "TAGS holds 7"),
        (("beta", "beta"), "TAGS lists beta more than once"),
    ],
)
def test_flask_gk_check_fails_on_tags_that_are_not_a_tuple_of_words(
    app, monkeypatch, tmp_path, tags, problem
):
    """A string instead of a tuple, a tag with a space or not text, or one listed twice: an error naming the
    flag and what to write; the exit status is 1."""
    monkeypatch.setitem(FF_CONFIG_MAP, "OLD_BANNER", flag_with(TAGS=tags))
    (tmp_path / "views.py").write_text("gk.ff('OLD_BANNER', 'ON')\n", encoding="utf-8")
    result = app.test_cli_runner().invoke(args=["gk", "check", str(tmp_path)])
    assert result.exit_code == 1
    assert f"error: OLD_BANNER: {problem}" in result.output


def test_flask_gk_check_accepts_the_sample_flags_tags(app, tmp_path):
    """The sample flags carry tags, and they pass the check (pointed at an empty folder: the flags are what
    is checked here, not the references)."""
    assert FF_CONFIG_MAP["NEW_CHECKOUT"].TAGS == ("checkout", "rollout")
    result = app.test_cli_runner().invoke(args=["gk", "check", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "TAGS" not in result.output
