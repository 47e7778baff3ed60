"""The conformance suite's tags: the spec's own labels, not pytest markers; the optional CACHED reason is
skipped, with why (gatekeeper evaluates every call afresh from its in-process snapshot)."""

from __future__ import annotations

import pytest


def pytest_bdd_apply_tag(tag, function):
    if tag == "reason-codes-cached":
        reason = "optional in the specification: gatekeeper never reports CACHED (each call is evaluated)"
        return pytest.mark.skip(reason=reason)(function)
    return True  # the other tags (@booleans, @spec-1.4.7, ...) label scenarios; they select nothing here


def pytest_configure(config):
    # Tags on the suites' Examples tables reach pytest as markers: declare them, so none is "unknown".
    for tag in ("booleans", "strings", "numbers", "objects", "hooks", "transaction"):
        config.addinivalue_line("markers", f"{tag}: a label of OpenFeature's gherkin suite")
