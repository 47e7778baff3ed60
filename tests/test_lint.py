"""The template's own Python (hooks, extensions, tests, benchmarks) is ruff clean: `make test` checks it."""

from bakery import RUFF, TEMPLATE_DIR, run


def test_template_code_passes_ruff_check():
    run([RUFF, "check", "--no-cache", "."], cwd=TEMPLATE_DIR)


def test_template_code_passes_ruff_format_check():
    run([RUFF, "format", "--check", "--no-cache", "."], cwd=TEMPLATE_DIR)
