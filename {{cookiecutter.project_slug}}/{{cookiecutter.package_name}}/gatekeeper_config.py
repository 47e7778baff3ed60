"""The app's feature flags: one FeatureFlagConfig subclass per flag, registered in FF_CONFIG_MAP.

Add a flag: write a subclass below (FLAG_NAME, VARIANTS_ENUM_STR, DEFAULT_VARIANT, DESCRIPTION and the rule
in `_get_variant`), add it to FF_CONFIG_MAP, and ask for it with `request.gk.ff('FLAG', 'VARIANT')` in a view
or `ff('FLAG', 'VARIANT')` in a template.
"""

if __package__:  # beside the app's __init__.py, in its package
    from .gatekeeper import CodeGroup, FeatureFlagConfig, FFConfigMap
else:  # beside a single-module app.py, as in the blog post (`import gatekeeper`)
    from gatekeeper import CodeGroup, FeatureFlagConfig, FFConfigMap

TEAM_USER_IDS = [1, 2, 3]


class MyNewFeatureFFConfig(FeatureFlagConfig):
    FLAG_NAME = "MY_NEW_FEATURE"
    VARIANTS_ENUM_STR = "VISIBLE NOT_VISIBLE"
    DEFAULT_VARIANT = "NOT_VISIBLE"
    DESCRIPTION = "Gate visibility of my new feature during development"
    TAGS = ("internal",)  # optional: words to find and filter flags by on the dashboard

    def _get_variant(self, user_id=None, app=None, request=None, session=None):
        """The team (users 1, 2 and 3, TEAM_USER_IDS) and development servers see it; nobody else."""
        if (app and app.config.get("IS_DEV")) or (user_id and user_id in TEAM_USER_IDS):
            return self.variants_enum.VISIBLE
        return self.variants_enum.NOT_VISIBLE


class HomepageExperimentFFConfig(FeatureFlagConfig):
    FLAG_NAME = "HOMEPAGE_EXPERIMENT"
    VARIANTS_ENUM_STR = "VARIANT_A VARIANT_B CONTROL"
    DEFAULT_VARIANT = "CONTROL"
    DESCRIPTION = "Three-way test of the home page headline: 10% see A, 10% see B, the rest the control."
    OWNER = "growth-team"  # optional: who to ask about the flag
    EXPIRES = "2027-03-01"  # optional: the date it should be gone by; `flask gk check` warns after it
    TAGS = ("experiment", "homepage")
    ROLLOUT = {"VARIANT_A": 10, "VARIANT_B": 10, "CONTROL": 80}

    def _get_variant(self, user_id=None, app=None, request=None, session=None):
        """Split by ROLLOUT (or the shares set on the dashboard): signed-in users by their id, visitors by
        their anonymous id cookie (user_id None), so each keeps their variant."""
        return self.rollout(user_id)


class NewCheckoutFFConfig(FeatureFlagConfig):
    FLAG_NAME = "NEW_CHECKOUT"
    VARIANTS_ENUM_STR = "ON OFF"
    DEFAULT_VARIANT = "OFF"
    DESCRIPTION = "The one-page checkout for a share of visitors, signed in or not; ramp it on the dashboard."
    TAGS = ("checkout", "rollout")
    # The weights self.rollout() uses until someone sets others at runtime (`flask gk rollout`, dashboard).
    ROLLOUT = {"ON": 10, "OFF": 90}
    # Browsers may know it: `gk.bootstrap()` writes it into pages and OFREP answers it for a session.
    CLIENT_SIDE = True

    def _get_variant(self, user_id=None, app=None, request=None, session=None):
        """ON for the share of visitors the rollout gives it (10% in code), OFF for the others."""
        return self.rollout(user_id)


class WelcomeMessageFFConfig(FeatureFlagConfig):
    FLAG_NAME = "WELCOME_MESSAGE"
    VARIANTS_ENUM_STR = "STANDARD SALE"
    DEFAULT_VARIANT = "STANDARD"
    DESCRIPTION = "The welcome banner's text: change it on the dashboard, no deploy; force SALE for a sale."
    TAGS = ("content",)
    # Each variant carries a text; `request.gk.value("WELCOME_MESSAGE")` (or `gk.value(...)` in a template)
    # is the one this user gets. An admin replaces a text at runtime: `flask gk value WELCOME_MESSAGE
    # STANDARD "Hello!"` or the flag's page. No rule: everyone gets STANDARD unless an admin says otherwise.
    VALUES = {
        "STANDARD": "Welcome! Flags decide what you see here; an admin can change this text at runtime.",
        "SALE": "Spring sale: everything is 20% off this week.",
    }


FF_CONFIG_MAP: FFConfigMap = {
    "MY_NEW_FEATURE": MyNewFeatureFFConfig(),
    "HOMEPAGE_EXPERIMENT": HomepageExperimentFFConfig(),
    "NEW_CHECKOUT": NewCheckoutFFConfig(),
    "WELCOME_MESSAGE": WelcomeMessageFFConfig(),
}

# Groups defined in code, for rules no stored list can hold; flags target them like stored groups
# (`flask gk target FLAG admins VARIANT`). The predicate gets the user object.
CODE_GROUPS = [
    CodeGroup("admins", lambda user: bool(getattr(user, "is_admin", False)), "Every admin"),
]
