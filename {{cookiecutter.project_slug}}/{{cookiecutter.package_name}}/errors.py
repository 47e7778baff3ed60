"""TEMPORARY placeholder: the app-core owner replaces this file."""


def init_app(app):
    pass
