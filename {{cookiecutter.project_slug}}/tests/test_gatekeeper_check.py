"""`flask gk check`: flag references in code and templates are checked against the flags the app declares."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from flask.testing import FlaskCliRunner

from {{ cookiecutter.package_name }}.gatekeeper_control import check as check_module


def plant(folder: Path, relative: str, text: str) -> Path:
    """Write a file with flag references into a scratch folder the check is pointed at."""
    path = folder / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def tag(code: str) -> str:
    """A Jinja statement, `{` `% code %` `}`: spelt in parts, so that the template repository's scan for
    unrendered Jinja does not take this test file for one cookiecutter left half-done."""
    return "{" + f"% {code} %" + "}"


def expression(code: str) -> str:
    """A Jinja expression, `{` `{ code }` `}` (spelt in parts, as `tag`)."""
    return "{" + "{ " + code + " }" + "}"


def check(runner: FlaskCliRunner, *paths: Path):
    return runner.invoke(args=["gk", "check", *map(str, paths)])


def test_the_project_as_baked_passes_the_check(runner):
    """The package and its tests name only flags and variants that exist: exit 0, and the summary shows
    that references were found (the home page's among them)."""
    result = runner.invoke(args=["gk", "check"])
    assert result.exit_code == 0, result.output
    assert "0 errors" in result.output
    assert "references to 0 flags" not in result.output


def test_misspelled_flag_in_python_fails_with_file_line_and_suggestion(runner, tmp_path):
    """`ff("MY_NEW_FEATUR", ...)` is an unknown flag: exit 1, its file and line, and the flag meant."""
    plant(tmp_path, "views.py", 'from flask import request\n\n\nrequest.gk.ff("MY_NEW_FEATUR", "VISIBLE")\n')
    result = check(runner, tmp_path)
    assert result.exit_code == 1
    assert "views.py:4: error: unknown flag 'MY_NEW_FEATUR' (did you mean 'MY_NEW_FEATURE'?)" in result.output


def test_misspelled_variant_in_a_template_fails_and_lists_the_variants(runner, tmp_path):
    """In a Jinja template, `ff('HOMEPAGE_EXPERIMENT', 'VARIANT_AA')` names no variant of the flag."""
    condition = tag("if ff('HOMEPAGE_EXPERIMENT', 'VARIANT_AA')")
    page = f"<h1>Hi</h1>\n{condition}new{tag('endif')}\n"
    plant(tmp_path, "templates/page.html", page)
    result = check(runner, tmp_path)
    assert result.exit_code == 1
    assert "page.html:2: error: HOMEPAGE_EXPERIMENT has no variant 'VARIANT_AA'" in result.output
    assert "did you mean 'VARIANT_A'?" in result.output
    assert "its variants: CONTROL, VARIANT_A, VARIANT_B" in result.output


def test_every_kind_of_reference_is_checked(runner, tmp_path):
    """The decorator, the test helpers, the variant getters and OpenFeature calls, by position or keyword,
    in Python and in templates: each misspelling is one error."""
    plant(
        tmp_path,
        "app.py",
        "@flag_required(flag='NO_SUCH_A', variant='ON')\n"
        "def view(): ...\n"
        "forced_variant('NO_SUCH_B', 'ON')\n"
        "force_flag('NO_SUCH_C', 'ON')\n"
        "gk.feature_flag('NO_SUCH_D', 'ON')\n"
        "gk.ff_variant('NO_SUCH_E')\n"
        "gk.get_feature_flag_variant('NO_SUCH_F')\n"
        "client.get_boolean_value('NO_SUCH_G', False)\n"
        "client.get_string_details(flag_key='NO_SUCH_H', default_value='OFF')\n",
    )
    plant(tmp_path, "templates/t.html", expression("request.gk.ff_variant('NO_SUCH_I')") + "\n")
    result = check(runner, tmp_path)
    assert result.exit_code == 1
    for letter in "ABCDEFGHI":
        assert f"unknown flag 'NO_SUCH_{letter}'" in result.output
    assert "9 errors" in result.output


def test_names_that_are_not_literals_are_not_guessed(runner, tmp_path):
    """`ff(flag, variant)` with variables cannot be checked statically, so it is neither an error nor a
    reference."""
    plant(tmp_path, "helpers.py", "def shown(gk, flag, variant):\n    return gk.ff(flag, variant)\n")
    result = check(runner, tmp_path)
    assert result.exit_code == 0, result.output
    assert "0 references" in result.output


def test_a_reference_marked_gk_ignore_is_skipped(runner, tmp_path):
    """A test that misspells a name on purpose says so with `# gk: ignore`, on the line or just above."""
    plant(
        tmp_path,
        "test_typos.py",
        "gk.ff('MY_NEW_FEATUR', 'VISIBLE')  # gk: ignore\n# gk: ignore (on purpose)\ngk.ff('NOPE', 'ON')\n",
    )
    result = check(runner, tmp_path)
    assert result.exit_code == 0, result.output


def test_flags_nothing_references_are_listed_as_warnings(runner, tmp_path):
    """When only MY_NEW_FEATURE is referenced, HOMEPAGE_EXPERIMENT is reported as unused, and the check
    still passes (an unused flag is clean-up, not a bug)."""
    plant(tmp_path, "views.py", "gk.ff('MY_NEW_FEATURE', 'VISIBLE')\n")
    result = check(runner, tmp_path)
    assert result.exit_code == 0, result.output
    assert "warning: HOMEPAGE_EXPERIMENT: nothing references this flag any more" in result.output
    assert "warning: MY_NEW_FEATURE" not in result.output


def test_flags_declared_in_scanned_code_are_known(runner, tmp_path):
    """A test module with its own FeatureFlagConfig subclass may use that flag and its variants."""
    plant(
        tmp_path,
        "test_own_flag.py",
        "class OnOff(FeatureFlagConfig):\n"
        "    FLAG_NAME = 'LOCAL_FLAG'\n"
        "    VARIANTS_ENUM_STR = 'ON OFF'\n\n"
        "gk.ff('LOCAL_FLAG', 'ON')\n"
        "gk.ff('LOCAL_FLAG', 'MAYBE')\n",
    )
    result = check(runner, tmp_path)
    assert result.exit_code == 1
    assert "test_own_flag.py:6: error: LOCAL_FLAG has no variant 'MAYBE'" in result.output
    assert "1 errors" in result.output


def test_a_file_that_does_not_parse_is_a_warning_not_a_crash(runner, tmp_path):
    """Broken Python or a broken template is reported as not checked; the rest is still checked."""
    plant(tmp_path, "broken.py", "def (:\n")
    plant(tmp_path, "templates/broken.html", "{" + "{ ff('MY_NEW_FEATURE', \n")
    plant(tmp_path, "ok.py", "gk.ff('MY_NEW_FEATUR', 'VISIBLE')\n")
    result = check(runner, tmp_path)
    assert result.exit_code == 1
    assert "broken.py:1: warning: not checked" in result.output
    assert "broken.html:1: warning: not checked" in result.output
    assert "ok.py:1: error: unknown flag 'MY_NEW_FEATUR'" in result.output


def test_a_spurious_ast_depth_error_of_cpython_is_retried(monkeypatch):
    """CPython 3.11's AST converter can say "recursion depth mismatch" when another thread converts an AST
    at the same moment: the parse is tried again, and the source's references are found."""
    failures = iter([SystemError("AST constructor recursion depth mismatch (before=168, after=55)")])
    real_parse = ast.parse

    def flaky_parse(*args, **kwargs):
        failure = next(failures, None)
        if failure is not None:
            raise failure
        return real_parse(*args, **kwargs)

    monkeypatch.setattr(ast, "parse", flaky_parse)
    assert isinstance(check_module.parse_python("x = 1"), ast.Module)


def test_any_other_system_error_of_the_parser_is_not_hidden(monkeypatch):
    def broken_parse(*args, **kwargs):
        raise SystemError("something else")

    monkeypatch.setattr(ast, "parse", broken_parse)
    with pytest.raises(SystemError, match="something else"):
        check_module.parse_python("x = 1")
