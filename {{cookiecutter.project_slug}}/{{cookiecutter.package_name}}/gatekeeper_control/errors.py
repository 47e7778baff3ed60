"""What the store's operations raise: each message says what happened and what to do instead."""

from __future__ import annotations


class StoreError(Exception):
    """A change or read the store could not make; the message says what happened and what to do."""


class OverrideError(StoreError, ValueError):
    """The change names something that does not exist; nothing was written."""


class UnknownFlagError(OverrideError):
    pass


class UnknownVariantError(OverrideError):
    pass


class UnknownUserError(OverrideError):
    pass


class StoreUnavailableError(StoreError):
    """The database could not be reached; nothing was written."""


class WeightsError(OverrideError):
    """Weights that do not name the flag's variants or do not add up to 100; nothing was written."""


class UnknownGroupError(OverrideError):
    pass


class InUseError(OverrideError):
    """A deletion that would change who gets what with no change of its own in the log (a group that still
    has members, or that a flag targets); nothing was written."""


class ValueRejectedError(OverrideError):
    """A variant value that is not JSON, not of the flag's type, or not what its VALUE_SCHEMA allows."""


class ScheduleError(OverrideError):
    """A scheduled change that cannot be made (bad time or action); nothing was written."""


class ReleaseError(OverrideError):
    """A guarded release that cannot be started or steered as asked; nothing was written."""
