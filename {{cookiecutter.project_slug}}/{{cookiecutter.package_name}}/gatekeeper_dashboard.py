"""TEMPORARY placeholder: the dashboard owner replaces this file."""

from flask import Blueprint

bp = Blueprint("gatekeeper", __name__)
