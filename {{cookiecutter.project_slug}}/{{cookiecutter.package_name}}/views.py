"""The app's pages. The home page doubles as a tour of the sample flags (see `templates/home.html`)."""

from __future__ import annotations

from flask import Blueprint, render_template

bp = Blueprint("views", __name__)


@bp.get("/")
def home() -> str:
    """The home page: MY_NEW_FEATURE for the team, and one of three HOMEPAGE_EXPERIMENT headlines."""
    return render_template("home.html")
