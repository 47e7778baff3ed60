"""`flask gk release start | status | pause | resume | advance | abort | save-template`.

Guarded releases (releases.py) from a terminal, audited as "cli". Importing this module adds the commands.
"""

from __future__ import annotations

import math

import click

from .engine import gatekeeper
from .errors import StoreError
from .guardrails import Plan
from .releases import Release, make_plan, releases
from .store import CLI_ACTOR


@gatekeeper.cli.group("release")
def release_group() -> None:
    """Guarded releases: ramp a flag's treatment and roll it back by itself if it hurts."""


def _plan_options(command: click.Command) -> click.Command:
    options = [
        click.option(
            "--milestones", default=None, help="Treatment shares in %, e.g. 1,5,25,50,100 (the default)."
        ),
        click.option("--min-seconds", type=float, default=None, help="Time each step needs (default 600)."),
        click.option("--min-sample", type=int, default=None, help="Requests each step needs per arm (500)."),
        click.option("--alpha", type=float, default=None, help="False alarms allowed per release (0.05)."),
        click.option(
            "--guardrail",
            "guardrails",
            multiple=True,
            help="errors (the default), latency_ms, or METRIC:lower|higher[:TOLERANCE]; repeat for more.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _plan(
    milestones: str | None,
    min_seconds: float | None,
    min_sample: int | None,
    alpha: float | None,
    guardrails: tuple[str, ...],
    base: Plan | None = None,
) -> Plan:
    steps = None
    if milestones:
        try:
            steps = [float(step) for step in milestones.split(",") if step.strip()]
        except ValueError:
            raise click.BadParameter(
                f"{milestones!r}: give shares like 1,5,25,50,100", param_hint="--milestones"
            ) from None
    return make_plan(
        milestones=steps,
        min_seconds=min_seconds,
        min_sample=min_sample,
        alpha=alpha,
        guardrails=guardrails,
        base=base,
    )


@release_group.command("start")
@click.argument("flag")
@click.option("--treatment", required=True, help="The new variant, e.g. ON.")
@click.option("--control", required=True, help="The variant it is compared with, e.g. OFF.")
@click.option("--template", default=None, help="Start from a saved plan (`flask gk release save-template`).")
@_plan_options
@click.option("--reason", default=None, help="Why, for the audit log.")
def start_command(
    flag: str,
    treatment: str,
    control: str,
    template: str | None,
    milestones: str | None,
    min_seconds: float | None,
    min_sample: int | None,
    alpha: float | None,
    guardrails: tuple[str, ...],
    reason: str | None,
) -> None:
    """Start a guarded release of FLAG at its first milestone."""
    try:
        base = releases.template(template) if template else None
        plan = _plan(milestones, min_seconds, min_sample, alpha, guardrails, base)
        release = releases.start(flag, treatment, control, CLI_ACTOR, plan=plan, reason=reason)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{flag}: release #{release.id} started, {treatment} at {release.share:g}% against {control}.")


@release_group.command("save-template")
@click.argument("name")
@_plan_options
def save_template_command(
    name: str,
    milestones: str | None,
    min_seconds: float | None,
    min_sample: int | None,
    alpha: float | None,
    guardrails: tuple[str, ...],
) -> None:
    """Save a plan under NAME, to start releases with `--template NAME`."""
    try:
        releases.save_template(name, _plan(milestones, min_seconds, min_sample, alpha, guardrails), CLI_ACTOR)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Release template {name} saved.")


@release_group.command("status")
@click.argument("flag")
def status_command(flag: str) -> None:
    """FLAG's latest release: where it is, each arm's evidence, and its decisions."""
    try:
        release = releases.current(flag)
        if release is None:
            raise click.ClickException(f"{flag} has had no release; start one with `flask gk release start`.")
        click.echo(describe(release))
        for report in releases.evidence(release):
            c = report.comparison
            line = (
                f"  {c.guardrail.metric}: {release.treatment} {c.treatment.mean:.4g} over {c.treatment.n:,}, "
                f"{release.control} {c.control.mean:.4g} over {c.control.n:,}"
            )
            if math.isfinite(c.low):
                line += f"; difference {c.difference:.4g} ({c.low:.4g} to {c.high:.4g})"
            if report.treatment_p95 is not None or report.control_p95 is not None:
                line += f"; p95 {report.treatment_p95} vs {report.control_p95} ms"
            click.echo(line)
        for decision in releases.decisions(release.id, limit=10):
            click.echo(f"  {decision.at:%Y-%m-%d %H:%M:%S} UTC  {decision.reason}")
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None


def describe(release: Release) -> str:
    steps = " > ".join(
        f"[{step:g}%]" if index == release.step and release.state in ("running", "paused") else f"{step:g}%"
        for index, step in enumerate(release.plan.milestones)
    )
    return (
        f"{release.flag}: release #{release.id} {release.state}, {release.treatment} at {release.share:g}% "
        f"against {release.control}; {steps}; started by {release.started_by}"
    )


def _steer(name: str, operation: str, help_text: str) -> None:
    @release_group.command(name, help=help_text)
    @click.argument("flag")
    @click.option("--reason", default=None, help="Why, for the audit log.")
    def command(flag: str, reason: str | None) -> None:
        try:
            entry = getattr(releases, operation)(flag, CLI_ACTOR, reason=reason)
        except StoreError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(entry.summary if entry else f"{flag}: nothing changed.")


_steer("pause", "pause", "Hold FLAG's release where it is (no advance, no roll-back).")
_steer("resume", "resume", "Let FLAG's paused release go on.")
_steer("advance", "advance", "Move FLAG's release to its next milestone now.")
_steer("abort", "abort", "End FLAG's release: everyone gets the control.")
