"""`flask gk check`: find every flag reference in the project's code and templates, and report the wrong ones.

A drop-in module: it imports only the standard library, Flask (click, Jinja) and `.gatekeeper`, and adds
`check` to the engine's `flask gk` group when imported.

What counts as a reference, when the flag (and variant) are written as string literals:

- Python (read with `ast`, never imported): `ff(FLAG, VARIANT)`, `feature_flag`, `flag_required`,
  `forced_variant`, the tests' `force_flag`, `ff_variant(FLAG)`, `get_feature_flag_variant(FLAG)`,
  `value(FLAG)` (`request.gk.value`, `gk.value` in templates), and the
  OpenFeature client's `get_<type>_value(FLAG, ...)` / `get_<type>_details(FLAG, ...)`;
- Jinja templates (read with the app's own Jinja lexer): the same calls, e.g. `ff('FLAG', 'VARIANT')` or
  `request.gk.ff_variant('FLAG')`.

A flag is known when FF_CONFIG_MAP has it, or when a scanned file declares a FeatureFlagConfig subclass
with a literal FLAG_NAME and VARIANTS_ENUM_STR (tests with their own flags). A reference is skipped when its
line holds `gk: ignore` (a `#` comment in Python, on the call's lines or alone on the line above it; a
Jinja comment in a template): for tests that misspell a name on purpose.

Errors (exit status 1): an unknown flag or variant, with a "did you mean" when one is close; a flag whose
TAGS are not a tuple of short words. Warnings: a flag nothing references any more, a flag past its EXPIRES
date, a file that cannot be read.
"""

from __future__ import annotations

import ast
import difflib
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext
from jinja2 import Environment, TemplateSyntaxError

from .engine import gatekeeper

# Callables whose first two arguments are a flag and one of its variants.
FLAG_AND_VARIANT_CALLS = frozenset({"ff", "feature_flag", "flag_required", "forced_variant", "force_flag"})
# Callables whose first argument is a flag: the engine's, and the OpenFeature client's evaluation methods.
FLAG_CALLS = frozenset(
    {"ff_variant", "get_feature_flag_variant", "value"}
    | {
        f"get_{kind}_{form}"
        for kind in ("boolean", "string", "integer", "float", "object")
        for form in ("value", "details")
    }
)
IGNORE_MARKER = "gk: ignore"
TEMPLATE_SUFFIXES = frozenset({".html", ".htm", ".jinja", ".jinja2", ".j2", ".txt", ".xml"})
SKIPPED_FOLDERS = frozenset({"__pycache__", "node_modules", "instance", "build", "dist", "htmlcov"})
# A tag is one word an admin types in the dashboard's filter: letters, digits and - _ . : (no spaces).
TAG = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,39}")


@dataclass(frozen=True)
class Reference:
    """One place that names a flag (and perhaps a variant)."""

    path: Path
    line: int
    flag: str
    variant: str | None = None


@dataclass(frozen=True)
class Finding:
    """One thing the check reports: `level` is "error" or "warning"; `path` is None for a whole flag."""

    level: str
    message: str
    path: Path | None = None
    line: int = 0

    def __str__(self) -> str:
        where = f"{_display(self.path)}:{self.line}: " if self.path is not None else ""
        return f"{where}{self.level}: {self.message}"


@dataclass
class Scan:
    """What the files hold: flag references, flags declared in them, and files that could not be read."""

    references: list[Reference]
    declared: dict[str, frozenset[str]]
    unreadable: list[Finding]


# -- finding references -------------------------------------------------------------------------------


AST_RETRIES = 3


def parse_python(source: str, filename: str = "<unknown>") -> ast.Module:
    """`ast.parse`, again when CPython 3.11 says "AST constructor recursion depth mismatch": its AST
    converter keeps that depth in state all threads share, so another thread converting an AST at the same
    moment (Werkzeug compiles its URL builders from ASTs) makes a spurious SystemError, not a fault of the
    source. Seen once in CI, in `flask gk check` beside a timer thread."""
    for _ in range(AST_RETRIES):
        try:
            return ast.parse(source, filename=filename)
        except SystemError as exc:
            if "recursion depth mismatch" not in str(exc):
                raise
    return ast.parse(source, filename=filename)


def python_references(path: Path, source: str) -> tuple[list[Reference], dict[str, frozenset[str]]]:
    """The flag references in one Python file, and the flags it declares; SyntaxError if it does not parse."""
    tree = parse_python(source, filename=str(path))
    lines = source.splitlines()
    references, declared = [], {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            flag, variants = _declared_flag(node)
            if flag is not None:
                declared[flag] = variants
        elif isinstance(node, ast.Call):
            name = _callee_name(node.func)
            if name not in FLAG_AND_VARIANT_CALLS and name not in FLAG_CALLS:
                continue
            if _ignored(lines, node):
                continue
            flag = _literal(node, 0, ("flag", "flag_key"))
            if flag is None:
                continue
            variant = _literal(node, 1, ("variant",)) if name in FLAG_AND_VARIANT_CALLS else None
            references.append(Reference(path, node.lineno, flag, variant))
    return sorted(references, key=lambda ref: ref.line), declared


def template_references(path: Path, source: str, env: Environment) -> list[Reference]:
    """The flag references in one Jinja template; TemplateSyntaxError if it does not parse."""
    env.parse(source)  # a broken template is reported as not checked, rather than half-read
    ignored = {number for number, line in enumerate(source.splitlines(), start=1) if IGNORE_MARKER in line}
    tokens = [(line, kind, value) for line, kind, value in env.lex(source) if kind != "whitespace"]
    references = []
    for index, (line, kind, value) in enumerate(tokens):
        if kind != "name" or line in ignored:
            continue
        if value not in FLAG_AND_VARIANT_CALLS and value not in FLAG_CALLS:
            continue
        arguments = _template_arguments(tokens[index + 1 : index + 6])
        if not arguments:
            continue
        variant = arguments[1] if value in FLAG_AND_VARIANT_CALLS and len(arguments) > 1 else None
        references.append(Reference(path, line, arguments[0], variant))
    return references


def scan(paths: Iterable[Path], env: Environment) -> Scan:
    """Read every Python file and template under `paths` (files or folders)."""
    result = Scan(references=[], declared={}, unreadable=[])
    for path in _files(paths):
        try:
            source = path.read_text(encoding="utf-8")
            if path.suffix == ".py":
                references, declared = python_references(path, source)
                result.declared.update(declared)
            else:
                references = template_references(path, source, env)
        except (OSError, UnicodeDecodeError, SyntaxError, TemplateSyntaxError) as error:
            line = getattr(error, "lineno", None) or 0
            result.unreadable.append(Finding("warning", f"not checked: {error}", path, line))
            continue
        result.references.extend(references)
    return result


# -- judging them ---------------------------------------------------------------------------------------


def check(
    config_map: Mapping[str, gatekeeper.FeatureFlagConfig], found: Scan, today: date | None = None
) -> list[Finding]:
    """Everything wrong with the references and the flags, errors first, each group in file order."""
    today = today or date.today()
    known = {name: frozenset(config.get_variants()) for name, config in config_map.items()}
    for name, variants in found.declared.items():
        known.setdefault(name, variants)
    errors = [finding for ref in found.references if (finding := _judge(ref, known)) is not None]
    errors += [
        Finding("error", f"{name}: {problem}")
        for name, config in sorted(config_map.items())
        if (problem := tags_problem(getattr(config, "TAGS", ()))) is not None
    ]
    referenced = {ref.flag for ref in found.references}
    warnings = [
        Finding("warning", f"{name}: nothing references this flag any more; remove it from FF_CONFIG_MAP?")
        for name in sorted(config_map)
        if name not in referenced
    ]
    for name, config in sorted(config_map.items()):
        expires = getattr(config, "expires", None)
        if expires is not None and expires < today:
            owner = f" (owner: {config.OWNER})" if getattr(config, "OWNER", "") else ""
            message = f"{name}: expired on {expires.isoformat()}{owner}; remove it or extend EXPIRES"
            warnings.append(Finding("warning", message))
    return [*errors, *warnings, *found.unreadable]


def tags_problem(tags: object) -> str | None:
    """What is wrong with a flag's TAGS, in a sentence with the fix; None when they are fine."""
    example = 'e.g. TAGS = ("checkout", "beta")'
    if isinstance(tags, str) or not isinstance(tags, tuple | list):
        return f"TAGS must be a tuple of words, {example}, not {tags!r}"
    for tag in tags:
        if not isinstance(tag, str) or not TAG.fullmatch(tag):
            return (
                f"TAGS holds {tag!r}: a tag is 1 to 40 letters, digits or - _ . : "
                f"starting with a letter or digit, {example}"
            )
    duplicates = sorted({tag for tag in tags if tags.count(tag) > 1})
    if duplicates:
        return f"TAGS lists {', '.join(duplicates)} more than once"
    return None


def default_paths(root_path: str) -> list[Path]:
    """The app's package folder and, next to it, the project's `tests` folder when there is one."""
    package = Path(root_path)
    tests = package.parent / "tests"
    return [package, tests] if tests.is_dir() else [package]


# -- `flask gk check` -----------------------------------------------------------------------------------


@gatekeeper.cli.command("check")
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@with_appcontext
def check_command(paths: tuple[Path, ...]) -> None:
    """Report unknown flags and variants in PATHS (default: the app's package and tests), unused and expired
    flags; exit 1 when a name is unknown."""
    config_map = gatekeeper.get_state().config_map
    found = scan(paths or default_paths(current_app.root_path), current_app.jinja_env)
    findings = check(config_map, found)
    for finding in findings:
        click.echo(str(finding), err=finding.level == "error")
    errors = sum(finding.level == "error" for finding in findings)
    flags = len({ref.flag for ref in found.references})
    click.echo(
        f"gk check: {len(found.references)} references to {flags} flags; "
        f"{errors} errors, {len(findings) - errors} warnings"
    )
    if errors:
        raise SystemExit(1)


# -- helpers --------------------------------------------------------------------------------------------


def _judge(ref: Reference, known: Mapping[str, frozenset[str]]) -> Finding | None:
    variants = known.get(ref.flag)
    if variants is None:
        message = f"unknown flag {ref.flag!r}{_did_you_mean(ref.flag, known)}"
        return Finding("error", message, ref.path, ref.line)
    if ref.variant is not None and ref.variant not in variants:
        message = f"{ref.flag} has no variant {ref.variant!r}{_did_you_mean(ref.variant, variants)}"
        return Finding("error", f"{message}; its variants: {', '.join(sorted(variants))}", ref.path, ref.line)
    return None


def _did_you_mean(name: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _ignored(lines: list[str], node: ast.Call) -> bool:
    """The call's lines, or a comment line right above it, hold the ignore marker."""
    start, end = node.lineno - 1, node.end_lineno or node.lineno
    above = lines[start - 1].strip() if start > 0 else ""
    return any(IGNORE_MARKER in line for line in lines[start:end]) or (
        above.startswith("#") and IGNORE_MARKER in above
    )


def _callee_name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _literal(call: ast.Call, position: int, keywords: tuple[str, ...]) -> str | None:
    """The string literal given as argument `position` (or by one of `keywords`), else None."""
    node = call.args[position] if len(call.args) > position else None
    if node is None:
        node = next((kw.value for kw in call.keywords if kw.arg in keywords), None)
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def _declared_flag(node: ast.ClassDef) -> tuple[str | None, frozenset[str]]:
    """A class body's literal FLAG_NAME and VARIANTS_ENUM_STR (a FeatureFlagConfig, by its shape)."""
    values = {}
    for statement in node.body:
        if isinstance(statement, ast.Assign) and isinstance(statement.value, ast.Constant):
            for target in statement.targets:
                if isinstance(target, ast.Name) and isinstance(statement.value.value, str):
                    values[target.id] = statement.value.value
    if "FLAG_NAME" in values and "VARIANTS_ENUM_STR" in values:
        return values["FLAG_NAME"], frozenset(values["VARIANTS_ENUM_STR"].split())
    return None, frozenset()


def _template_arguments(tokens: list[tuple[int, str, str]]) -> list[str]:
    """The leading string-literal arguments of a call whose `(` opens `tokens`: `('A', 'B')` -> [A, B].

    `Environment.lex` gives raw tokens: operators as ("operator", "("), strings with their quotes.
    """
    if not tokens or tokens[0][1:] != ("operator", "("):
        return []
    arguments = []
    for _, kind, value in tokens[1:]:
        if kind == "string":
            try:
                arguments.append(str(ast.literal_eval(value)))
            except (ValueError, SyntaxError):
                break
        elif (kind, value) != ("operator", ","):
            break
    return arguments


def _files(paths: Iterable[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_file():
            yield path
            continue
        for folder, subfolders, names in os.walk(path):
            subfolders[:] = sorted(
                name for name in subfolders if not name.startswith(".") and name not in SKIPPED_FOLDERS
            )
            in_templates = "templates" in Path(folder).parts
            for name in sorted(names):
                file = Path(folder) / name
                if file.suffix == ".py" or (in_templates and file.suffix in TEMPLATE_SUFFIXES):
                    yield file


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
