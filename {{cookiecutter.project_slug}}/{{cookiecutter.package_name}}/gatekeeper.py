"""TEMPORARY placeholder: the engine owner replaces this file."""

from flask import Flask


def init_app(app: Flask, config_map: dict, *, store=None, can_override=None, user_id_loader=None) -> None:
    app.extensions["gatekeeper"] = {"config_map": config_map, "store": store}
