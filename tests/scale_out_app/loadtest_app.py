"""Test-only (copied into a bake by tests/test_scale_out.py, never shipped): the baked app plus ten flags and
a page that reports, for each flag, every variant `ff()` says yes to, and which worker process answered."""

import importlib
import os

from flask import jsonify, request

PACKAGE = os.environ["BAKED_PACKAGE"]
baked = importlib.import_module(PACKAGE)
gatekeeper = importlib.import_module(f"{PACKAGE}.gatekeeper")
FF_CONFIG_MAP = importlib.import_module(f"{PACKAGE}.gatekeeper_config").FF_CONFIG_MAP

FLAGS = [f"LOAD_{number}" for number in range(10)]
VARIANTS = ("A", "B")


def _rule(self, user_id=None, app=None, request=None, session=None):
    return self.variants_enum.A


def _flag(name):
    attributes = {
        "FLAG_NAME": name,
        "VARIANTS_ENUM_STR": "A B",
        "DEFAULT_VARIANT": "A",
        "_get_variant": _rule,
    }
    return type(name, (gatekeeper.FeatureFlagConfig,), attributes)()


FF_CONFIG_MAP.update({name: _flag(name) for name in FLAGS})
app = baked.create_app()


@app.get("/_flags")
def flags():
    """{"pid": worker, "variants": {flag: [every variant ff() is true for]}}: one per flag when consistent."""
    checks = {name: [variant for variant in VARIANTS if request.gk.ff(name, variant)] for name in FLAGS}
    return jsonify(pid=os.getpid(), variants=checks)
