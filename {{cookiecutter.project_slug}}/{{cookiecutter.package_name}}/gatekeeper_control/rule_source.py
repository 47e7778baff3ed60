"""The rule as the flag page shows it: the docstring and a short excerpt of `_get_variant`, and where the code
uses the flag (from `flask gk check`'s scan), all read-only.

The rule is Python, so the dashboard cannot edit it; it can say what it is, so that an admin reading "10% of
visitors" in a description sees the code beside the live weights. The scan reads the app's package once per
process (a restart, or the debug reloader, reads it again): the code does not change under a running app.
"""

from __future__ import annotations

import ast
import functools
import inspect
import logging
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import current_app

from .check import Reference, parse_python, scan
from .engine import gatekeeper

# The excerpt's length: enough for a typical rule (a few branches), never a whole module on the page.
EXCERPT_LINES = 15
# Where the code uses a flag: the first few places, then a count of the rest.
USAGE_SHOWN = 8

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rule:
    """What the flag page says about a flag's rule: `in_code` is False when the class has no rule of its own
    (everyone gets the default, unless something above the rule decides)."""

    in_code: bool
    docstring: str
    excerpt: str
    more_lines: int  # lines of the rule left out of the excerpt
    where: str  # "file.py, line N", as the excerpt's caption


def rule_of(config: Any) -> Rule:
    """The flag's `_get_variant`: its docstring and first EXCERPT_LINES lines (docstring left out)."""
    method = type(config)._get_variant
    if method is gatekeeper.FeatureFlagConfig._get_variant:
        return Rule(False, "", "", 0, "")
    try:
        lines, start = inspect.getsourcelines(method)
        path = Path(inspect.getsourcefile(method) or "")
    except (OSError, TypeError):  # built at run time, or from a zip without sources
        return Rule(True, inspect.getdoc(method) or "", "", 0, "")
    body = _without_docstring(textwrap.dedent("".join(lines)).splitlines())
    excerpt = body[:EXCERPT_LINES]
    return Rule(
        in_code=True,
        docstring=inspect.getdoc(method) or "",
        excerpt="\n".join(excerpt),
        more_lines=len(body) - len(excerpt),
        where=f"{path.name}, line {start}",
    )


def usage_of(flag: str) -> tuple[list[Reference], int]:
    """The first USAGE_SHOWN places in the app's package that name `flag`, and how many there are in all; none
    (and a line in the log) when the package cannot be scanned: the flag page never fails for its excerpt."""
    try:
        found = _references(current_app.root_path)
    except Exception:
        log.exception("gatekeeper: could not scan %s for the flag page's usage list", current_app.root_path)
        return [], 0
    references = [ref for ref in found if ref.flag == flag]
    return references[:USAGE_SHOWN], len(references)


def relative_path(reference: Reference) -> str:
    """The reference's file, relative to the folder that holds the app's package."""
    root = Path(current_app.root_path).parent
    try:
        return str(reference.path.relative_to(root))
    except ValueError:
        return str(reference.path)


@functools.lru_cache(maxsize=4)
def _references(root_path: str) -> tuple[Reference, ...]:
    """Every flag reference in the package at `root_path`, read once per process (see the module's note)."""
    found = scan([Path(root_path)], current_app.jinja_env)
    return tuple(found.references)


def _without_docstring(lines: list[str]) -> list[str]:
    """The method's lines without its docstring (shown as text above the excerpt, not twice)."""
    try:
        function = parse_python("\n".join(lines)).body[0]
    except (SyntaxError, IndexError):
        return lines
    first = function.body[0] if isinstance(function, ast.FunctionDef) and function.body else None
    if not (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)):
        return lines
    if not isinstance(first.value.value, str):
        return lines
    return lines[: first.lineno - 1] + lines[first.end_lineno or first.lineno :]
