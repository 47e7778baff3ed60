"""TEMPORARY placeholder: the app-core owner replaces this file."""

from flask import Blueprint

bp = Blueprint("views", __name__)


@bp.get("/")
def home():
    return "home"
