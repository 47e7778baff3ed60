"""The template's own Python (hooks, extensions, tests, benchmarks) is ruff clean: `make test` checks it."""

import sys
from pathlib import Path

from bakery import TEMPLATE_DIR, run

RUFF = Path(sys.executable).with_name("ruff")


def test_template_code_passes_ruff_check():
    run([RUFF, "check", "--no-cache", "."], cwd=TEMPLATE_DIR)


def test_template_code_passes_ruff_format_check():
    run([RUFF, "format", "--check", "--no-cache", "."], cwd=TEMPLATE_DIR)
