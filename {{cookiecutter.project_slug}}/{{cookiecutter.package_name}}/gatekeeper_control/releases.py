"""Guarded releases: a rollout that ramps itself and rolls itself back when the treatment hurts.

A release of a flag whose rule rolls out (ROLLOUT in code, or weights stored at runtime) compares a
treatment variant with a control variant. It starts at its first milestone (1 % treatment by default); a
due check, run by the timer (timer.py) in one process at a time (the `releases` lease), reads both arms'
request outcomes since the release began (outcomes.py) and asks `guardrails.decide`: a significant
regression on any guardrail rolls the treatment back to 0 % at once; a step that has its minimum time and
sample with no regression advances to the next milestone; reaching 100 % completes the release. Every
step is an ordinary audited weights change (actor: "release #N (started by X)") through the store's one
write path, so undo, schedules, push and `flask gk explain` keep working, and stickiness holds as the ramp
rises (the treatment keeps the first range). Each decision is applied once: the release row moves only
from the step and state it was read in.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from flask import current_app
from sqlalchemy import desc, select, update
from sqlalchemy.orm import Session

from . import leases, timer
from .audit import AuditEntry, clean_reason, record
from .checks import check_flag, check_variant, quote
from .errors import ReleaseError
from .guardrails import ArmStats, Comparison, Decision, Guardrail, Plan, chi_square_p_value, compare, decide
from .outcomes import ERRORS, ArmOutcomes, Baseline, baseline_in, totals
from .snapshot import DATABASE_ERRORS, EXTENSION_KEY, as_utc
from .store import current_state, store
from .tables import (
    ACTIVE_RELEASE,
    LABEL_LENGTH,
    NAME_LENGTH,
    ReleaseDecisionRow,
    ReleaseRow,
    ReleaseTemplateRow,
)
from .targeting import code_weights, set_weights_in, utc_now

log = logging.getLogger(__name__)

ACTIVE = ACTIVE_RELEASE
LEASE_NAME = "releases"
LEASE_SECONDS = 30.0
# A split this unlikely under the weights (chi-square on the step's requests) holds the release.
RATIO_P_VALUE = 0.001
RATIO_MIN_REQUESTS = 1_000


@dataclass(frozen=True)
class Release:
    id: int
    flag: str
    treatment: str
    control: str
    plan: Plan
    state: str
    step: int
    step_started_at: datetime
    started_at: datetime
    started_by: str
    ended_at: datetime | None
    last_reason: str | None
    baseline: Baseline | None = None  # what the flag had in the minute the release began, before it
    step_baseline: Baseline | None = None  # the same for the current step

    @property
    def share(self) -> float:
        """The treatment's share now (%)."""
        if self.state == "completed":
            return 100.0
        if self.state in ("rolled_back", "aborted"):
            return 0.0
        return self.plan.milestones[self.step]

    @property
    def actor(self) -> str:
        return f"release #{self.id} (started by {self.started_by})"[:LABEL_LENGTH]


@dataclass(frozen=True)
class ReleaseDecision:
    at: datetime
    action: str
    share: float
    reason: str


@dataclass(frozen=True)
class ArmReport:
    """One guardrail's evidence for the dashboard and `flask gk release status`."""

    comparison: Comparison
    control_p95: float | None = None
    treatment_p95: float | None = None


def plan_to_json(plan: Plan) -> str:
    return json.dumps(asdict(plan))


def plan_from_json(text: str) -> Plan:
    data = json.loads(text)
    data["milestones"] = tuple(float(step) for step in data["milestones"])
    data["guardrails"] = tuple(Guardrail(**guardrail) for guardrail in data["guardrails"])
    return Plan(**data)


def parse_guardrail(text: str) -> Guardrail:
    """`errors`, `latency_ms`, or `METRIC[:lower|higher[:TOLERANCE]]` (tolerance a share, e.g. 0.05)."""
    metric, _, rest = (text or "").strip().partition(":")
    direction, _, tolerance = rest.partition(":")
    if not metric or len(metric) > NAME_LENGTH - 4 or "#" in metric:
        raise ReleaseError(f"{quote(text)} is not a guardrail: give a metric, e.g. errors or latency_ms.")
    try:
        return Guardrail(metric, direction or "lower", float(tolerance) if tolerance else 0.0)  # type: ignore[arg-type]
    except ValueError as exc:
        raise ReleaseError(f"Guardrail {quote(text)}: {exc}.") from None


def make_plan(
    *,
    milestones: Iterable[float] | None = None,
    min_seconds: float | None = None,
    min_sample: int | None = None,
    alpha: float | None = None,
    guardrails: Iterable[str | Guardrail] | None = None,
    base: Plan | None = None,
) -> Plan:
    """A plan from what was given, the rest from `base` (a template) or the app's defaults."""
    config = current_app.config
    base = base or Plan(
        min_seconds=float(config.get("GATEKEEPER_RELEASE_MIN_SECONDS", 600)),
        min_sample=int(config.get("GATEKEEPER_RELEASE_MIN_SAMPLE", 500)),
    )
    chosen = [g if isinstance(g, Guardrail) else parse_guardrail(g) for g in guardrails or ()]
    try:
        return Plan(
            milestones=tuple(float(step) for step in milestones) if milestones else base.milestones,
            min_seconds=base.min_seconds if min_seconds is None else float(min_seconds),
            min_sample=base.min_sample if min_sample is None else int(min_sample),
            alpha=base.alpha if alpha is None else float(alpha),
            guardrails=tuple(chosen) or base.guardrails,
        )
    except (TypeError, ValueError) as exc:
        raise ReleaseError(f"That plan cannot work: {exc}. Nothing was started.") from None


class Releases:
    """Start, steer and check guarded releases of the current app's flags (`releases`, below)."""

    def start(
        self,
        flag: str,
        treatment: str,
        control: str,
        actor: str,
        *,
        plan: Plan | None = None,
        template: str | None = None,
        reason: str | None = None,
    ) -> Release:
        reason = clean_reason(reason)
        config = check_flag(flag)
        for variant in (treatment, control):
            check_variant(config, flag, variant)
        if treatment == control:
            raise ReleaseError(
                f"{flag}: the treatment and the control must be two variants; nothing started."
            )
        if not (code_weights(config) or store.snapshot().weights.get(flag)):
            raise ReleaseError(
                f"{flag}'s rule does not roll out by weights (no ROLLOUT in code, none stored): a release "
                "ramps weights, so give the flag a ROLLOUT or set weights first. Nothing was started."
            )
        if template is not None:
            plan = make_plan(base=self.template(template)) if plan is None else plan
        plan = plan or make_plan()
        now = utc_now()

        def change(session: Session) -> AuditEntry | None:
            active = _active_row(session, flag)
            if active is not None:
                raise ReleaseError(
                    f"{flag} already has release #{active.id} ({active.state}): abort it first. "
                    "Nothing was started."
                )
            row = ReleaseRow(
                flag=flag,
                treatment=treatment,
                control=control,
                plan=plan_to_json(plan),
                state="running",
                step=0,
                step_started_at=now,
                started_at=now,
                started_by=actor[:LABEL_LENGTH],
            )
            row.baseline = row.step_baseline = json.dumps(baseline_in(session, flag, now))
            session.add(row)
            session.flush()
            release = _release(row)
            words = f"started: {treatment} against {control}, at {release.share:g}%"
            _set_share(session, release, release.share, reason=reason)
            _decide_in(session, row, "start", release.share, words, now)
            return record(session, actor, flag, "release", f"#{row.id}", None, words, reason=reason)

        store._write(change)
        current = self.current(flag)
        assert current is not None
        return current

    def pause(self, flag: str, actor: str, *, reason: str | None = None) -> AuditEntry | None:
        """Hold the release where it is: no advance and no roll-back until it is resumed."""
        return self._move(flag, actor, "pause", reason=reason)

    def resume(self, flag: str, actor: str, *, reason: str | None = None) -> AuditEntry | None:
        return self._move(flag, actor, "resume", reason=reason)

    def abort(self, flag: str, actor: str, *, reason: str | None = None) -> AuditEntry | None:
        """End the release and give everyone the control (treatment 0 %)."""
        return self._move(flag, actor, "abort", reason=reason)

    def advance(self, flag: str, actor: str, *, reason: str | None = None) -> AuditEntry | None:
        """Go to the next milestone now, without waiting for its time and sample (a regression still rolls
        back at the next check); from the last step before 100 % that completes the release."""
        return self._move(flag, actor, "advance", reason=reason)

    def _move(self, flag: str, actor: str, action: str, *, reason: str | None = None) -> AuditEntry | None:
        reason = clean_reason(reason)
        check_flag(flag)
        now = utc_now()

        def change(session: Session) -> AuditEntry | None:
            row = _active_row(session, flag)
            if row is None:
                raise ReleaseError(f"{flag} has no release running or paused; nothing changed.")
            release = _release(row)
            needs = {"pause": "running", "resume": "paused", "advance": "running"}.get(action)
            if needs is not None and row.state != needs:
                raise ReleaseError(
                    f"{flag}'s release #{row.id} is {row.state}, not {needs}; nothing changed."
                )
            share: float | None = None
            if action == "pause":
                row.state, words = "paused", f"paused at {release.share:g}%"
            elif action == "resume":
                row.state, words = "running", f"resumed at {release.share:g}%"
                row.step_started_at = now  # the time at this step counts again from now
                row.step_baseline = json.dumps(baseline_in(session, flag, now))
            elif action == "abort":
                row.state, share, words = "aborted", 0.0, "aborted: the treatment back to 0%"
            else:
                row.step, row.step_started_at = row.step + 1, now
                row.step_baseline = json.dumps(baseline_in(session, flag, now))
                share = release.plan.milestones[row.step]
                row.state = "completed" if share >= 100.0 else "running"
                words = f"advanced by hand to {share:g}%" + (
                    ": completed" if row.state == "completed" else ""
                )
            if row.state not in ACTIVE:
                row.ended_at = now
            row.last_reason = words
            if share is not None:
                _set_share(session, release, share, reason=reason)
            _decide_in(session, row, action, release.share if share is None else share, words, now)
            return record(session, actor, flag, "release", f"#{row.id}", release.state, words, reason=reason)

        return store._write(change)

    # Reading ------------------------------------------------------------------------------------------------

    def current(self, flag: str) -> Release | None:
        """The flag's latest release (running, paused or ended), or None."""
        with store._reading() as session:
            row = session.scalars(
                select(ReleaseRow).where(ReleaseRow.flag == flag).order_by(desc(ReleaseRow.id)).limit(1)
            ).first()
            return _release(row) if row is not None else None

    def decisions(self, release_id: int, limit: int = 50) -> list[ReleaseDecision]:
        with store._reading() as session:
            rows = session.scalars(
                select(ReleaseDecisionRow)
                .where(ReleaseDecisionRow.release_id == release_id)
                .order_by(desc(ReleaseDecisionRow.id))
                .limit(limit)
            ).all()
            return [ReleaseDecision(as_utc(r.at), r.action, r.share, r.reason) for r in rows]

    def evidence(self, release: Release) -> list[ArmReport]:
        """Each guardrail's comparison since the release began (what the next check will judge)."""
        engine = current_state().engine
        reports = []
        for guardrail in release.plan.guardrails:
            arms = totals(
                engine,
                release.flag,
                (release.control, release.treatment),
                guardrail.metric,
                release.started_at,
                release.baseline,
            )
            control, treatment = arms[release.control], arms[release.treatment]
            comparison = compare(
                guardrail,
                control.stats,
                treatment.stats,
                alpha=release.plan.alpha / len(release.plan.guardrails),
            )
            reports.append(ArmReport(comparison, control.p95, treatment.p95))
        return reports

    # Templates ----------------------------------------------------------------------------------------------

    def save_template(self, name: str, plan: Plan, actor: str) -> None:
        name = (name or "").strip()
        if not name or len(name) > NAME_LENGTH or not name.replace("-", "").replace("_", "").isalnum():
            raise ReleaseError(f"{quote(name)} is not a template name: use letters, digits, - and _.")

        def change(session: Session) -> AuditEntry | None:
            row = session.get(ReleaseTemplateRow, name) or ReleaseTemplateRow(name=name)
            row.plan, row.saved_by, row.saved_at = plan_to_json(plan), actor[:LABEL_LENGTH], utc_now()
            session.add(row)
            return record(session, actor, "", "release_template", name, None, _describe_plan(plan))

        store._write(change)

    def template(self, name: str) -> Plan:
        with store._reading() as session:
            row = session.get(ReleaseTemplateRow, name)
            if row is None:
                known = ", ".join(sorted(session.scalars(select(ReleaseTemplateRow.name)))) or "none yet"
                raise ReleaseError(f"No release template {quote(name)} (saved: {known}).")
            return plan_from_json(row.plan)

    def templates(self) -> dict[str, Plan]:
        with store._reading() as session:
            return {row.name: plan_from_json(row.plan) for row in session.scalars(select(ReleaseTemplateRow))}

    # The due check ------------------------------------------------------------------------------------------

    def check_due(self, now: datetime | None = None) -> list[tuple[Release, Decision]]:
        """Judge every running release once (the timer's job, under the `releases` lease); return what was
        decided. Each decision is applied in its own transaction, from the step it was read at."""
        state = current_state()
        now = now or utc_now()
        with Session(state.engine) as session:
            rows = session.scalars(select(ReleaseRow).where(ReleaseRow.state == "running")).all()
            running = [_release(row) for row in rows]
        decided = []
        for release in running:
            try:
                decision = self._judge(release, now)
                self._apply(release, decision, now)
            except ReleaseError as exc:  # e.g. the flag or a variant left the code: say so, keep going
                log.warning("gatekeeper release #%s of %s: %s", release.id, release.flag, exc)
                continue
            decided.append((release, decision))
        return decided

    def _judge(self, release: Release, now: datetime) -> Decision:
        engine = current_state().engine
        variants = (release.control, release.treatment)
        arms: dict[str, tuple[ArmStats, ArmStats]] = {}
        for guardrail in release.plan.guardrails:
            found: Mapping[str, ArmOutcomes] = totals(
                engine, release.flag, variants, guardrail.metric, release.started_at, release.baseline
            )
            arms[guardrail.metric] = (found[release.control].stats, found[release.treatment].stats)
        at_step = totals(
            engine, release.flag, variants, ERRORS, release.step_started_at, release.step_baseline
        )
        control_n, treatment_n = at_step[release.control].stats.n, at_step[release.treatment].stats.n
        return decide(
            release.plan,
            release.step,
            arms,
            sample_at_step=min(control_n, treatment_n),
            seconds_at_step=(now - release.step_started_at).total_seconds(),
            ratio_mismatch=_ratio_mismatch(release.share, control_n, treatment_n),
        )

    def _apply(self, release: Release, decision: Decision, now: datetime) -> None:
        if decision.action == "hold":
            if decision.reason != release.last_reason:  # the same words again add nothing to the log
                self._hold(release, decision, now)
            return
        state = {"rollback": "rolled_back", "complete": "completed"}.get(decision.action, "running")

        def change(session: Session) -> AuditEntry | None:
            values: dict[str, Any] = {"state": state, "last_reason": decision.reason}
            if decision.action == "advance":
                baseline = json.dumps(baseline_in(session, release.flag, now))
                values.update(step=release.step + 1, step_started_at=now, step_baseline=baseline)
            if state != "running":
                values["ended_at"] = now
            if not _claim(session, release, values):
                return None  # paused, aborted or judged by another process meanwhile: nothing to do
            _decide_in(session, release, decision.action, decision.share, decision.reason, now)
            _set_share(session, release, decision.share)
            before = f"{release.share:g}%"
            return record(
                session, release.actor, release.flag, "release", f"#{release.id}", before, decision.reason
            )

        if store._write(change) is None:
            return
        if decision.action == "rollback":
            log.warning("gatekeeper release #%s of %s %s", release.id, release.flag, decision.reason)
        else:
            log.info("gatekeeper release #%s of %s %s", release.id, release.flag, decision.reason)

    def _hold(self, release: Release, decision: Decision, now: datetime) -> None:
        """A hold changes no flag: its words go to the decision log, without the store's write path."""
        with Session(current_state().engine) as session:
            if _claim(session, release, {"last_reason": decision.reason}):
                _decide_in(session, release, "hold", decision.share, decision.reason, now)
                session.commit()


releases = Releases()


def check_due_now() -> int:
    """The timer's job, in an app context: if this process holds the releases lease, judge every running
    release; return how many decisions were made."""
    app_store = current_app.extensions.get(EXTENSION_KEY)
    if app_store is None:
        return 0
    try:
        if not leases.try_acquire(app_store.engine, LEASE_NAME, leases.process_holder(), LEASE_SECONDS):
            return 0
        return len(releases.check_due())
    except DATABASE_ERRORS as exc:
        app_store.mark_unavailable(exc)
        return 0


def init_app(app: Any) -> None:
    """Judge running releases every `GATEKEEPER_RELEASE_CHECK_SECONDS` (default 10) on the timer."""
    timer.every("releases", float(app.config.get("GATEKEEPER_RELEASE_CHECK_SECONDS", 10)), check_due_now)


def _active_row(session: Session, flag: str) -> ReleaseRow | None:
    return session.scalars(
        select(ReleaseRow).where(ReleaseRow.flag == flag, ReleaseRow.state.in_(ACTIVE)).limit(1)
    ).first()


def _release(row: ReleaseRow) -> Release:
    return Release(
        id=row.id,
        flag=row.flag,
        treatment=row.treatment,
        control=row.control,
        plan=plan_from_json(row.plan),
        state=row.state,
        step=row.step,
        step_started_at=as_utc(row.step_started_at),
        started_at=as_utc(row.started_at),
        started_by=row.started_by,
        ended_at=as_utc(row.ended_at) if row.ended_at else None,
        last_reason=row.last_reason,
        baseline=json.loads(row.baseline) if row.baseline else None,
        step_baseline=json.loads(row.step_baseline) if row.step_baseline else None,
    )


def _set_share(session: Session, release: Release, share: float, *, reason: str | None = None) -> None:
    """The weights for `share` % treatment, the rest control: an ordinary audited weights change."""
    points = {release.treatment: round(share * 100), release.control: 10_000 - round(share * 100)}
    config = check_flag(release.flag)
    ordered = {name: points[name] for name in config.rollout_order(points)}
    set_weights_in(session, release.flag, ordered, release.actor, reason=reason)


def _claim(session: Session, release: Release, values: Mapping[str, Any]) -> bool:
    """Move the release row only from the state and step it was judged at: each decision applies once."""
    claimed = session.execute(
        update(ReleaseRow)
        .where(ReleaseRow.id == release.id, ReleaseRow.state == "running", ReleaseRow.step == release.step)
        .values(**values)
    )
    return claimed.rowcount == 1


def _decide_in(
    session: Session, release: ReleaseRow | Release, action: str, share: float, reason: str, now: datetime
) -> None:
    session.add(ReleaseDecisionRow(release_id=release.id, at=now, action=action, share=share, reason=reason))


def _ratio_mismatch(share: float, control_n: int, treatment_n: int) -> str | None:
    """A split of this step's requests that the weights make very unlikely (chi-square, 1 degree)."""
    total = control_n + treatment_n
    if total < RATIO_MIN_REQUESTS or not 0 < share < 100:
        return None
    expected_t, expected_c = total * share / 100, total * (100 - share) / 100
    statistic = (treatment_n - expected_t) ** 2 / expected_t + (control_n - expected_c) ** 2 / expected_c
    if chi_square_p_value(statistic, 1) >= RATIO_P_VALUE:
        return None
    return (
        f"the split does not match the weights ({treatment_n:,} treatment and {control_n:,} control requests "
        f"at this step, {share:g}% expected): check how the flag is asked before trusting the comparison"
    )


def _describe_plan(plan: Plan) -> str:
    steps = ", ".join(f"{step:g}" for step in plan.milestones)
    rails = ", ".join(g.metric for g in plan.guardrails)
    per_step = f"{plan.min_sample:,} requests and {plan.min_seconds:g} s per step"
    return f"milestones {steps}%; {per_step}; guarding {rails}"
