"""TEMPORARY placeholder: the store owner replaces this file."""


class OverrideStore:
    def init_app(self, app, db, user_lookup=None):
        app.extensions["gatekeeper_store"] = self


store = OverrideStore()
