"""A project may not be named like the libraries the security features import (they would be shadowed)."""

from __future__ import annotations

import pytest
from bakery import load_hook

pre_gen = load_hook("pre_gen_project")


@pytest.mark.parametrize("name", ["flask_limiter", "limits", "email_validator"])
def test_a_package_named_like_a_security_dependency_is_refused(name):
    """`flask_limiter`, `limits` (its engine) and `email_validator` are refused, naming the module."""
    message = pre_gen.check_identifier("package_name", name)
    assert message is not None
    assert f"would shadow the {name!r} module" in message
