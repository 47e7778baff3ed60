"""The store's tables, in a metadata of their own so they never mix with the app's models.

Every table is named `gatekeeper_*`. An app that lets Alembic own its schema adds `metadata` to its
`migrations/env.py`; one that does not calls `create_tables()` (see the folder's README section).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, Float, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Column sizes: flag and variant names, user ids, and labels (emails, actors).
NAME_LENGTH, USER_ID_LENGTH, LABEL_LENGTH = 100, 64, 254
REASON_LENGTH = 500  # an optional note on a change, shown in the audit log


class Base(DeclarativeBase):
    """The store's own metadata, so its tables never mix with the app's models."""


class ForcedRow(Base):
    __tablename__ = "gatekeeper_forced_variants"

    flag: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    variant: Mapped[str] = mapped_column(String(NAME_LENGTH))
    set_by: Mapped[str] = mapped_column(String(LABEL_LENGTH))
    set_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class UserOverrideRow(Base):
    __tablename__ = "gatekeeper_user_overrides"

    flag: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(USER_ID_LENGTH), primary_key=True)
    user_label: Mapped[str] = mapped_column(String(LABEL_LENGTH))
    variant: Mapped[str] = mapped_column(String(NAME_LENGTH))
    set_by: Mapped[str] = mapped_column(String(LABEL_LENGTH))
    set_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AuditRow(Base):
    __tablename__ = "gatekeeper_audit_log"
    __table_args__ = (Index("ix_gatekeeper_audit_log_flag_id", "flag", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(LABEL_LENGTH))
    flag: Mapped[str] = mapped_column(String(NAME_LENGTH))
    action: Mapped[str] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(String(LABEL_LENGTH))
    # Text: a variant's value (JSON) is audited whole, before and after, so that an undo can restore it.
    before: Mapped[str | None] = mapped_column(Text)
    after: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(String(REASON_LENGTH))
    user_id: Mapped[str | None] = mapped_column(String(USER_ID_LENGTH))


class VersionRow(Base):
    """One row whose counter every write bumps, so a refresh can tell in one query that nothing changed."""

    __tablename__ = "gatekeeper_version"

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int]


class WeightRow(Base):
    """One variant's share of a flag's rollout, in hundredths of a percent (exact, and they add to 10,000)."""

    __tablename__ = "gatekeeper_rollout_weights"

    flag: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    variant: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)  # the order of the ranges (see rollout_order)
    basis_points: Mapped[int] = mapped_column(Integer)
    set_by: Mapped[str] = mapped_column(String(LABEL_LENGTH))
    set_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class GroupRow(Base):
    __tablename__ = "gatekeeper_groups"

    name: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    description: Mapped[str] = mapped_column(String(LABEL_LENGTH), default="")
    created_by: Mapped[str] = mapped_column(String(LABEL_LENGTH))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class MemberRow(Base):
    __tablename__ = "gatekeeper_group_members"

    group: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(USER_ID_LENGTH), primary_key=True)
    user_label: Mapped[str] = mapped_column(String(LABEL_LENGTH))
    added_by: Mapped[str] = mapped_column(String(LABEL_LENGTH))
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class TargetRow(Base):
    """Flag FLAG serves VARIANT to the members of GROUP; a user in two targeted groups gets the older."""

    __tablename__ = "gatekeeper_group_targets"

    flag: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    group: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    variant: Mapped[str] = mapped_column(String(NAME_LENGTH))
    set_by: Mapped[str] = mapped_column(String(LABEL_LENGTH))
    set_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class DisabledRow(Base):
    """Flag FLAG is switched off: everyone gets its DEFAULT_VARIANT (reason `disabled`)."""

    __tablename__ = "gatekeeper_disabled_flags"

    flag: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    set_by: Mapped[str] = mapped_column(String(LABEL_LENGTH))
    set_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ValueRow(Base):
    """The value VARIANT of FLAG carries, set at runtime in place of the code's VALUES: JSON text."""

    __tablename__ = "gatekeeper_variant_values"

    flag: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    variant: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    set_by: Mapped[str] = mapped_column(String(LABEL_LENGTH))
    set_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class PrerequisiteRow(Base):
    """Flag FLAG serves its default to whoever does not get VARIANT of flag REQUIRED."""

    __tablename__ = "gatekeeper_prerequisites"

    flag: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    required: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    variant: Mapped[str] = mapped_column(String(NAME_LENGTH))
    set_by: Mapped[str] = mapped_column(String(LABEL_LENGTH))
    set_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SegmentRow(Base):
    """A named set of conditions on context attributes (conditions.py); flags target it like a group."""

    __tablename__ = "gatekeeper_segments"

    name: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    description: Mapped[str] = mapped_column(String(LABEL_LENGTH), default="")
    created_by: Mapped[str] = mapped_column(String(LABEL_LENGTH))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ConditionRow(Base):
    """One condition of a segment, in the order added: ATTRIBUTE OPERATOR VALUE (the value as JSON)."""

    __tablename__ = "gatekeeper_segment_conditions"

    id: Mapped[int] = mapped_column(primary_key=True)
    segment: Mapped[str] = mapped_column(String(NAME_LENGTH))
    attribute: Mapped[str] = mapped_column(String(NAME_LENGTH))
    operator: Mapped[str] = mapped_column(String(32))
    value: Mapped[str | None] = mapped_column(Text)


class ScheduleRow(Base):
    __tablename__ = "gatekeeper_schedules"
    __table_args__ = (Index("ix_gatekeeper_schedules_state_due_at", "state", "due_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    flag: Mapped[str] = mapped_column(String(NAME_LENGTH))
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    action: Mapped[str] = mapped_column(String(32))
    argument: Mapped[str] = mapped_column(String(LABEL_LENGTH), default="")
    created_by: Mapped[str] = mapped_column(String(LABEL_LENGTH))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    state: Mapped[str] = mapped_column(String(16), default="pending")  # pending, applied, failed, cancelled
    done_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[str | None] = mapped_column(String(LABEL_LENGTH))


class LeaseRow(Base):
    """Who may run a job that must run in one process at a time, until when (leases.py)."""

    __tablename__ = "gatekeeper_leases"

    name: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


URL_LENGTH = 2000  # a webhook endpoint's URL


class WebhookEndpointRow(Base):
    """A URL that receives every change (webhooks.py): Standard Webhooks JSON, signed with SECRET, or a Slack
    message (kind "slack", no secret)."""

    __tablename__ = "gatekeeper_webhook_endpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(String(URL_LENGTH))
    kind: Mapped[str] = mapped_column(String(16))  # standard, slack
    secret: Mapped[str | None] = mapped_column(String(100))  # whsec_...; None for Slack
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by: Mapped[str] = mapped_column(String(LABEL_LENGTH))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class WebhookMessageRow(Base):
    """The outbox: one change (or test) for one endpoint, written in the change's own transaction, and sent
    until it is delivered or given up. MESSAGE_ID is the `webhook-id`, the same on every retry."""

    __tablename__ = "gatekeeper_webhook_outbox"
    __table_args__ = (Index("ix_gatekeeper_webhook_outbox_due", "state", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(Integer)
    message_id: Mapped[str] = mapped_column(String(40))
    event_type: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)  # the exact bytes sent (and signed), as text
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    state: Mapped[str] = mapped_column(String(16), default="pending")  # pending, delivered, failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    done_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(String(LABEL_LENGTH))


class WebhookAttemptRow(Base):
    """One delivery attempt of an outbox message: the HTTP status, or why there was none."""

    __tablename__ = "gatekeeper_webhook_attempts"
    __table_args__ = (Index("ix_gatekeeper_webhook_attempts_endpoint", "endpoint_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    message: Mapped[int] = mapped_column(Integer)  # the outbox row's id
    endpoint_id: Mapped[int] = mapped_column(Integer)
    attempt: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[int | None] = mapped_column(Integer)  # the HTTP status; None when no answer came
    error: Mapped[str | None] = mapped_column(String(LABEL_LENGTH))
    milliseconds: Mapped[int] = mapped_column(Integer)


class TokenRow(Base):
    """An API token or OFREP client key (tokens.py): only its SHA-256 is stored, never the token itself."""

    __tablename__ = "gatekeeper_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH), unique=True)
    scope: Mapped[str] = mapped_column(String(16))  # evaluate, read or write
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 hex of the raw token
    prefix: Mapped[str] = mapped_column(String(16))  # the token's first characters, to recognise it in lists
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(String(LABEL_LENGTH))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class OutcomeRow(Base):
    """How the requests served one variant of a flag went in one minute, on one metric (outcomes.py)."""

    __tablename__ = "gatekeeper_outcomes"

    flag: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    variant: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    minute: Mapped[int] = mapped_column(Integer, primary_key=True)  # minutes since the Unix epoch, UTC
    metric: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    n: Mapped[int] = mapped_column(Integer)
    total: Mapped[float] = mapped_column(Float)
    total_squares: Mapped[float] = mapped_column(Float)


ACTIVE_RELEASE = ("running", "paused")  # the states of a release still under way (at most one per flag)


class ReleaseRow(Base):
    """A guarded release of one flag: treatment against control, ramped by milestones (releases.py)."""

    __tablename__ = "gatekeeper_releases"

    id: Mapped[int] = mapped_column(primary_key=True)
    flag: Mapped[str] = mapped_column(String(NAME_LENGTH))
    treatment: Mapped[str] = mapped_column(String(NAME_LENGTH))
    control: Mapped[str] = mapped_column(String(NAME_LENGTH))
    plan: Mapped[str] = mapped_column(Text)  # JSON: milestones, minimum time and sample, alpha, guardrails
    state: Mapped[str] = mapped_column(String(16))  # running, paused, rolled_back, completed, aborted
    step: Mapped[int] = mapped_column(Integer)
    step_started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    started_by: Mapped[str] = mapped_column(String(LABEL_LENGTH))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_reason: Mapped[str | None] = mapped_column(Text)  # the latest decision's words
    # JSON: the flag's outcomes stored earlier in the minute the release (the step) began, subtracted from
    # its counts (outcomes.baseline_in)
    baseline: Mapped[str | None] = mapped_column(Text)
    step_baseline: Mapped[str | None] = mapped_column(Text)


class ReleaseDecisionRow(Base):
    """One decision of a release's due check or of an admin, in words (the release's decision log)."""

    __tablename__ = "gatekeeper_release_decisions"
    __table_args__ = (Index("ix_gatekeeper_release_decisions", "release_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    release_id: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    action: Mapped[str] = mapped_column(String(16))
    share: Mapped[float] = mapped_column(Float)
    reason: Mapped[str] = mapped_column(Text)


class ReleaseTemplateRow(Base):
    """A release plan saved under a name, to start other releases with."""

    __tablename__ = "gatekeeper_release_templates"

    name: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    plan: Mapped[str] = mapped_column(Text)
    saved_by: Mapped[str] = mapped_column(String(LABEL_LENGTH))
    saved_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


# Every gatekeeper table (the exposures' too, see exposures.py), for an Alembic env.py:
# `target_metadata = [db.metadata, gatekeeper_control.metadata]`.
metadata = Base.metadata
