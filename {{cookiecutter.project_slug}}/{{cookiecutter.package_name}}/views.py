"""The app's pages. The home page doubles as a tour of the sample flags (see `templates/home.html`)."""

from __future__ import annotations

import random

from flask import Blueprint, current_app, render_template, request

bp = Blueprint("views", __name__)


@bp.get("/")
def home() -> str:
    """The home page: MY_NEW_FEATURE for the team, and one of three HOMEPAGE_EXPERIMENT headlines."""
    _demo_broken_checkout()
    return render_template("home.html")


def _demo_broken_checkout() -> None:
    """`DEMO_BROKEN_CHECKOUT` (a share, 0 by default): that share of the home pages served NEW_CHECKOUT's ON
    fail, as a broken new checkout would, so that a guarded release of it has something to roll back (the
    README's "Guarded releases" shows how, with `make traffic`). Delete this when you delete the samples."""
    share = current_app.config["DEMO_BROKEN_CHECKOUT"]
    if share and request.gk.ff("NEW_CHECKOUT", "ON") and random.random() < share:
        raise RuntimeError("the demo's broken new checkout (DEMO_BROKEN_CHECKOUT)")
