"""TEMPORARY placeholder: the app-core owner replaces this file."""

from flask import Flask


def lookup_user(text):
    return None


def init_app(app: Flask) -> None:
    pass
