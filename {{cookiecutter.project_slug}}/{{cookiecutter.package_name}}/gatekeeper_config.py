"""TEMPORARY placeholder: the engine owner replaces this file."""

FF_CONFIG_MAP: dict = {}
