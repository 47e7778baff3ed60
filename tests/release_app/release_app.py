"""Test-only (copied into a bake by tests/test_guarded_release_served.py, never shipped): the baked app plus a
checkout page that asks NEW_CHECKOUT and, when the load generator asks with `?broken=1`, fails in 10% of
the requests it serves ON, as a broken new checkout would."""

import importlib
import os
import random

from flask import jsonify, request

baked = importlib.import_module(os.environ["BAKED_PACKAGE"])
app = baked.create_app()
_chance = random.Random()


@app.get("/_checkout")
def checkout():
    variant = request.gk.ff_variant("NEW_CHECKOUT")
    if variant == "ON" and request.args.get("broken") and _chance.random() < 0.10:
        raise RuntimeError("the new checkout failed")
    return jsonify(variant=variant)
