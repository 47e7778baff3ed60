"""Jinja filters that put a cookiecutter answer into TOML or Python as a string literal, whatever it holds.

Cookiecutter's `jsonify` escapes non-ASCII text as `\\uXXXX`; an emoji becomes a surrogate pair, which TOML
rejects and Python turns into two broken characters. These filters keep the text as UTF-8 and escape only
what the target language needs. `cookiecutter.json` loads them through `_extensions`.

    description = {{ cookiecutter.description|toml_string }}
    APP_NAME = {{ cookiecutter.project_name|py_string }}
"""

from __future__ import annotations

import json

from jinja2 import Environment
from jinja2.ext import Extension


def toml_string(value: object) -> str:
    """A TOML basic string: JSON's escaping is valid TOML once non-ASCII text is left as it is."""
    return json.dumps(str(value), ensure_ascii=False)


def py_string(value: object) -> str:
    """A Python string literal quoted the way `ruff format` wants it, so a baked file stays format-clean.

    Like ruff (and black), prefer double quotes unless the text holds more double than single quotes.
    """
    text = str(value).replace("\\", "\\\\")
    for char, escape in (("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t")):
        text = text.replace(char, escape)
    quote = "'" if text.count('"') > text.count("'") else '"'
    return quote + text.replace(quote, "\\" + quote) + quote


class QuotingExtension(Extension):
    """Registers `toml_string` and `py_string` as Jinja filters."""

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        environment.filters["toml_string"] = toml_string
        environment.filters["py_string"] = py_string
