"""The app's feature flags: one FeatureFlagConfig subclass per flag, registered in FF_CONFIG_MAP.

Add a flag: write a subclass below (FLAG_NAME, VARIANTS_ENUM_STR, DEFAULT_VARIANT, DESCRIPTION and the rule
in `_get_variant`), add it to FF_CONFIG_MAP, and ask for it with `request.gk.ff('FLAG', 'VARIANT')` in a view
or `ff('FLAG', 'VARIANT')` in a template.
"""

from typing import ClassVar

from .gatekeeper import FeatureFlagConfig, FFConfigMap

TEAM_USER_IDS = [1, 2, 3]


class MyNewFeatureFFConfig(FeatureFlagConfig):
    FLAG_NAME = "MY_NEW_FEATURE"
    VARIANTS_ENUM_STR = "VISIBLE NOT_VISIBLE"
    DEFAULT_VARIANT = "NOT_VISIBLE"
    DESCRIPTION = "Gate visibility of my new feature during development"

    def _get_variant(self, user_id=None, app=None, request=None, session=None):
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
    # The split; the dashboard also checks the users it has seen against it (sample ratio mismatch).
    WEIGHTS: ClassVar[dict[str, float]] = {"VARIANT_A": 10, "VARIANT_B": 10, "CONTROL": 80}

    def _get_variant(self, user_id=None, app=None, request=None, session=None):
        # Signed-in users are bucketed by user id; visitors by their anonymous id cookie (user_id None).
        return self.rollout(user_id, self.WEIGHTS)


FF_CONFIG_MAP: FFConfigMap = {
    "MY_NEW_FEATURE": MyNewFeatureFFConfig(),
    "HOMEPAGE_EXPERIMENT": HomepageExperimentFFConfig(),
}
