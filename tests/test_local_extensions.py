"""The quoting filters: any one-line answer becomes a TOML or Python literal that reads back exactly."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest
from bakery import RUFF, load_template_module, run

quoting = load_template_module("local_extensions.py")
py_string, toml_string = quoting.py_string, quoting.toml_string

TEXTS = [
    "Gatekeeper App",
    'The "Best" Shop',
    "O'Brien's",
    "Say \"hi\" to O'Brien's",
    'more "double" than \' single "',
    "C:\\path\\to\\it \\",
    "Ünïcödé Café 🚀 李",
    "''' and \"\"\"",
    "tab\there",
    "{{ not jinja }} {% raw %}",
    "",
]


@pytest.mark.parametrize("text", TEXTS)
def test_toml_string_reads_back_exactly(text):
    """tomllib reads the literal back as the very same text."""
    assert tomllib.loads(f"value = {toml_string(text)}\n")["value"] == text


@pytest.mark.parametrize("text", TEXTS)
def test_py_string_reads_back_exactly(text):
    """Python reads the literal back as the very same text."""
    assert ast.literal_eval(py_string(text)) == text


def test_py_string_is_already_ruff_formatted(tmp_path: Path):
    """`ruff format` leaves every literal as rendered, so a baked file stays format-clean."""
    source = "".join(f"VALUE_{number} = {py_string(text)}\n" for number, text in enumerate(TEXTS))
    module = tmp_path / "names.py"
    module.write_text(source, encoding="utf-8")
    run([RUFF, "format", "--check", "--no-cache", "--isolated", module])
