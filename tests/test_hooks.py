"""The generation hooks as plain functions: what pre-gen refuses and what post-gen writes."""

from __future__ import annotations

import re

import pytest
from bakery import CHOICES, CONTEXT, DEFAULT_PYTHON, load_hook

pre_gen = load_hook("pre_gen_project")
post_gen = load_hook("post_gen_project")

DEFAULT_ANSWERS = {
    "project_name": "Gatekeeper App",
    "project_slug": "gatekeeper_app",
    "package_name": "gatekeeper_app",
    "description": CONTEXT["description"],
    "author_name": CONTEXT["author_name"],
    "author_email": CONTEXT["author_email"],
    "python_version": DEFAULT_PYTHON,
    "ci": CHOICES["ci"][0],
    "database": CHOICES["database"][0],
    "change_feed": CHOICES["change_feed"][0],
}
TRICKY_TEXT = 'Zoë "Z" O\'Brien \\ """ \'\'\' {{ not jinja }} 🚀'

NOT_IDENTIFIERS = ["My-App", "my app", "1st_app", "", "_private", "café", "my.app", "Shop"]
KEYWORDS = ["class", "import", "lambda", "async"]
APP_MODULES = ["flask", "flask_login", "flask_wtf", "flask_sqlalchemy", "sqlalchemy", "werkzeug", "jinja2"]
APP_MODULES += ["click", "itsdangerous", "blinker", "dotenv", "gunicorn", "test", "tests", "gatekeeper"]
APP_MODULES += ["flask_migrate", "alembic", "psycopg", "redis"]
STDLIB_MODULES = ["os", "json", "email", "secrets", "logging", "string", "types"]


def test_default_answers_pass():
    """The defaults cookiecutter.json gives raise no problem."""
    assert pre_gen.validate(DEFAULT_ANSWERS) == []


@pytest.mark.parametrize("name", NOT_IDENTIFIERS)
def test_name_that_is_not_a_lowercase_identifier_is_refused(name):
    """A slug is lowercase letters, digits and underscores, starting with a letter; the message says so."""
    message = pre_gen.check_identifier("project_slug", name)
    assert message is not None
    assert "lowercase letters, digits and underscores, starting with a letter" in message


@pytest.mark.parametrize("name", KEYWORDS)
def test_python_keyword_is_refused(name):
    """A keyword cannot be imported, so it cannot be the package name."""
    message = pre_gen.check_identifier("package_name", name)
    assert message is not None
    assert "is a Python keyword" in message


@pytest.mark.parametrize("name", APP_MODULES + STDLIB_MODULES)
def test_name_that_shadows_an_imported_module_is_refused(name):
    """A package named like a module the app or Python imports would shadow it; the message names it."""
    message = pre_gen.check_identifier("package_name", name)
    assert message is not None
    assert f"would shadow the {name!r} module" in message


@pytest.mark.parametrize("name", NOT_IDENTIFIERS + KEYWORDS + APP_MODULES + STDLIB_MODULES)
def test_every_refusal_suggests_a_name_that_passes(name):
    """The message says what to type instead, and that suggestion is itself accepted."""
    message = pre_gen.check_identifier("project_slug", name)
    suggestion = re.search(r"Type a name like '(\w+)' instead\.", message).group(1)
    assert pre_gen.check_identifier("project_slug", suggestion) is None


def test_suggestion_keeps_the_users_words():
    """The suggested name is the user's answer made valid, not an unrelated default."""
    assert pre_gen.suggest_identifier("My Shop-2") == "my_shop_2"
    assert pre_gen.suggest_identifier("flask") == "flask_app"
    assert pre_gen.suggest_identifier("2fast") == "app_2fast"


@pytest.mark.parametrize("name", ["gatekeeper_app", "shop", "my_shop_2", "flask_app", "match", "type"])
def test_ordinary_names_are_accepted(name):
    """Plain lowercase names, soft keywords included, are valid package names."""
    assert pre_gen.check_identifier("package_name", name) is None


def test_package_name_is_checked_on_its_own():
    """A good slug with a bad package name still fails, and the message names package_name."""
    problems = pre_gen.validate({**DEFAULT_ANSWERS, "package_name": "flask"})
    assert len(problems) == 1
    assert problems[0].startswith("package_name 'flask'")


@pytest.mark.parametrize("email", ["nope", "a@b", "a b@example.com", "@example.com", "you@", ""])
def test_malformed_author_email_is_refused(email):
    """An author email must look like name@domain.tld; the message shows one that does."""
    message = pre_gen.check_email("author_email", email)
    assert message is not None
    assert "you@example.com" in message


@pytest.mark.parametrize("email", ["you@example.com", "first.last+tag@sub.example.org"])
def test_ordinary_author_email_is_accepted(email):
    """Everyday addresses pass."""
    assert pre_gen.check_email("author_email", email) is None


@pytest.mark.parametrize("name", ["", "   "])
def test_empty_project_name_is_refused(name):
    """A project needs a name; the message gives an example."""
    message = pre_gen.check_text("project_name", name, required=True)
    assert message is not None
    assert "is empty" in message


@pytest.mark.parametrize("field", ["project_name", "description", "author_name"])
def test_text_answer_with_a_line_break_is_refused(field):
    """Free-text answers go on one line (they land in TOML, Python and Markdown one-liners)."""
    problems = pre_gen.validate({**DEFAULT_ANSWERS, field: "two\nlines"})
    assert problems == [
        f"{field} 'two\\nlines' holds a line break or control character: type it on one line."
    ]


def test_text_answers_may_hold_quotes_backslashes_and_unicode():
    """Quotes, apostrophes, backslashes and non-ASCII text are fine in names and descriptions."""
    answers = {**DEFAULT_ANSWERS, "project_name": TRICKY_TEXT, "description": TRICKY_TEXT}
    answers["author_name"] = TRICKY_TEXT
    assert pre_gen.validate(answers) == []


def test_every_problem_is_reported_at_once():
    """Several bad answers give several messages, so the user fixes them in one go."""
    answers = {**DEFAULT_ANSWERS, "project_slug": "class", "package_name": "os", "author_email": "x"}
    assert len(pre_gen.validate(answers)) == 3


@pytest.mark.parametrize("hook", ["pre_gen_project", "post_gen_project"])
def test_rendered_hook_reads_answers_as_data(hook):
    """Answers with quotes, triple quotes, backslashes, newlines and Jinja text come back unchanged."""
    answers = {**DEFAULT_ANSWERS, "project_name": TRICKY_TEXT, "description": 'line\nbreak """\');'}
    rendered = load_hook(hook, answers)
    assert rendered.read_answers() == answers


def test_env_file_holds_a_fresh_secret_key(tmp_path):
    """`.env` gets a comment and a 64-hex-digit SECRET_KEY."""
    assert post_gen.write_env_file(tmp_path)
    lines = (tmp_path / ".env").read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("# ")
    assert re.fullmatch(r"SECRET_KEY=[0-9a-f]{64}", lines[1])


def test_each_env_file_gets_a_different_secret_key(tmp_path):
    """Two projects never share a secret key."""
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    post_gen.write_env_file(first)
    post_gen.write_env_file(second)
    assert (first / ".env").read_text() != (second / ".env").read_text()


def test_the_redis_change_feed_is_set_in_env_and_nothing_else_is_added(tmp_path):
    """Choosing the Redis change feed puts its URL in `.env` after the key; the default adds no line."""
    assert post_gen.env_settings(DEFAULT_ANSWERS) == []
    redis = post_gen.env_settings({**DEFAULT_ANSWERS, "change_feed": "redis"})
    assert redis == ["GATEKEEPER_CHANGE_FEED=redis://127.0.0.1:6379/0"]
    assert post_gen.write_env_file(tmp_path, redis)
    lines = (tmp_path / ".env").read_text(encoding="utf-8").splitlines()
    assert lines[1].startswith("SECRET_KEY=")
    assert lines[2:] == redis


def test_every_env_setting_names_a_real_choice():
    """Each `.env` line is tied to an answer and value that cookiecutter.json offers."""
    for answer, lines_by_value in post_gen.ENV_SETTINGS.items():
        assert set(lines_by_value) <= set(CONTEXT[answer])


def test_existing_env_file_is_kept(tmp_path):
    """Re-baking over a project (`-f`) keeps its `.env` and the secrets in it."""
    (tmp_path / ".env").write_text("SECRET_KEY=mine\n", encoding="utf-8")
    assert not post_gen.write_env_file(tmp_path)
    assert (tmp_path / ".env").read_text(encoding="utf-8") == "SECRET_KEY=mine\n"


def test_github_folder_belongs_to_ci_github_only():
    """Choosing no CI drops `.github`; choosing GitHub keeps it."""
    assert post_gen.paths_not_chosen({**DEFAULT_ANSWERS, "ci": "none"}) == [".github"]
    assert post_gen.paths_not_chosen({**DEFAULT_ANSWERS, "ci": "github"}) == []


def test_every_optional_path_names_a_real_choice():
    """Each optional path is tied to an answer and value that cookiecutter.json offers."""
    for answer, paths_by_value in post_gen.OPTIONAL_PATHS.items():
        assert set(paths_by_value) <= set(CONTEXT[answer])


def test_remove_paths_deletes_folders_and_files(tmp_path):
    """Unchosen folders and files are removed; missing ones are no error."""
    (tmp_path / ".github" / "workflows").mkdir(parents=True)
    (tmp_path / ".github" / "workflows" / "ci.yml").write_text("on: push\n", encoding="utf-8")
    (tmp_path / "extra.txt").write_text("x", encoding="utf-8")
    (tmp_path / "kept.txt").write_text("x", encoding="utf-8")
    post_gen.remove_paths(tmp_path, [".github", "extra.txt", "missing"])
    assert sorted(path.name for path in tmp_path.iterdir()) == ["kept.txt"]
