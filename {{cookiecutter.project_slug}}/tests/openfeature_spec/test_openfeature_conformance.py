"""OpenFeature's own conformance scenarios (the specification's gherkin suites, beside this file with their
licence; see SOURCE.md), run against GatekeeperProvider through the real OpenFeature SDK.

The flags are the suite's `test-flags.json`, declared as gatekeeper flags: its variants and values become
`VARIANTS_ENUM_STR` and `VALUES` (a `-` in a variant name becomes `_`: gatekeeper's variant names are
identifiers; no scenario names one), `defaultVariant` becomes `DEFAULT_VARIANT`, `flagMetadata` becomes
`METADATA`, each `contextEvaluator` (a CEL expression) is written as the gatekeeper rule it stands for, one
that declares a `context` parameter, and a flag marked `disabled` is switched off at runtime, as an admin
would (`store.switch_off`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.event import ProviderEventDetails
from openfeature.exception import ErrorCode, GeneralError, ProviderFatalError
from openfeature.flag_evaluation import FlagEvaluationOptions
from openfeature.hook import Hook
from openfeature.provider import ProviderStatus
from openfeature.transaction_context import ContextVarsTransactionContextPropagator
from pytest_bdd import given, parsers, scenarios, then, when

from {{ cookiecutter.package_name }} import create_app, database
from {{ cookiecutter.package_name }}.extensions import db
from {{ cookiecutter.package_name }}.gatekeeper import FeatureFlagConfig
from {{ cookiecutter.package_name }}.gatekeeper_config import FF_CONFIG_MAP
from {{ cookiecutter.package_name }}.gatekeeper_control.openfeature import GatekeeperProvider
from {{ cookiecutter.package_name }}.gatekeeper_control.store import store
from tests.databases import drop_database, new_database

HERE = Path(__file__).parent
DOMAIN = "openfeature-conformance"
RECORDER = "context-recorder"  # a flag of this harness: its rule keeps the context each evaluation gets

scenarios("evaluation_v2.feature", "metadata.feature", "hooks.feature", "contextMerging.feature")


def _targeted_zero(context: Mapping[str, Any]) -> str | None:
    """email == 'ballmer@macrosoft.com' ? 'zero' : ''"""
    return "zero" if context.get("email") == "ballmer@macrosoft.com" else None


def _complex_targeted(context: Mapping[str, Any]) -> str | None:
    """!customer && email == 'ballmer@macrosoft.com' && age > 10 ? 'internal' : ''"""
    age = context.get("age")
    matched = (
        context.get("customer") is False
        and context.get("email") == "ballmer@macrosoft.com"
        and type(age) in (int, float)
        and age > 10
    )
    return "internal" if matched else None


RULES: dict[str, Callable[[Mapping[str, Any]], str | None]] = {
    "email == 'ballmer@macrosoft.com' ? 'zero' : ''": _targeted_zero,
    "!customer && email == 'ballmer@macrosoft.com' && age > 10 ? 'internal' : ''": _complex_targeted,
}


def flag_config(key: str, spec: Mapping[str, Any]) -> FeatureFlagConfig:
    """One flag of test-flags.json as a gatekeeper flag."""
    names = {variant: variant.replace("-", "_") for variant in spec["variants"]}
    body: dict[str, Any] = {
        "FLAG_NAME": key,
        "VARIANTS_ENUM_STR": " ".join(names.values()),
        "VALUES": {names[variant]: value for variant, value in spec["variants"].items()},
    }
    if spec.get("defaultVariant"):
        body["DEFAULT_VARIANT"] = names[spec["defaultVariant"]]
    if spec.get("flagMetadata"):
        body["METADATA"] = spec["flagMetadata"]
    if spec.get("contextEvaluator"):
        rule = RULES[spec["contextEvaluator"]]

        def _get_variant(self, user_id=None, app=None, request=None, session=None, context=None):
            return rule(context)

        body["_get_variant"] = _get_variant
    return type(f"Spec{len(key)}FFConfig", (FeatureFlagConfig,), body)()


class ContextRecorderFFConfig(FeatureFlagConfig):
    FLAG_NAME = RECORDER
    VARIANTS_ENUM_STR = "on off"
    VALUES = {"on": True, "off": False}  # noqa: RUF012 (read only)
    seen: list[Mapping[str, Any]] = []  # noqa: RUF012 (the contexts rules got, newest last)

    def _get_variant(self, user_id=None, app=None, request=None, session=None, context=None):
        self.seen.append(context)


SPEC_FLAGS = json.loads((HERE / "test-flags.json").read_text())


@pytest.fixture(scope="module")
def spec_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    """One app for the whole suite, with the suite's flags (the disabled ones switched off)."""
    flags = {key: flag_config(key, spec) for key, spec in SPEC_FLAGS.items()}
    flags[RECORDER] = ContextRecorderFFConfig()
    url = new_database(tmp_path_factory.mktemp("openfeature") / "spec.db")
    with pytest.MonkeyPatch.context() as patch:
        for key, config in flags.items():
            patch.setitem(FF_CONFIG_MAP, key, config)
        app = create_app(
            {
                "TESTING": True,
                "SECRET_KEY": "spec",
                "SQLALCHEMY_DATABASE_URI": url,
                "GATEKEEPER_STORE_PUSH": False,
                "GATEKEEPER_TIMER": False,  # no thread of its own: the suite asks flags, nothing is due
            }
        )
        with app.app_context():
            database.init_db()
            for key, spec in SPEC_FLAGS.items():
                if spec.get("disabled"):
                    store.switch_off(key, "openfeature conformance suite")
        yield app
        with app.app_context():
            db.engine.dispose()
    drop_database(url)


@pytest.fixture
def world(spec_app: Flask) -> Iterator[dict[str, Any]]:
    """What a scenario's steps share; OpenFeature's global state is reset afterwards."""
    state: dict[str, Any] = {"app": spec_app, "context": {}, "levels": {}, "calls": []}
    yield state
    if "release" in state:
        state["release"]()
    api.clear_providers()
    api.clear_hooks()
    api.clear_evaluation_context()
    api.clear_transaction_context_propagator()


# --- Providers -------------------------------------------------------------------------------------------


class NotReadyProvider(GatekeeperProvider):
    """Gatekeeper's provider whose start-up has not finished."""

    def __init__(self, app: Flask) -> None:
        super().__init__(app)
        import threading

        self.started = threading.Event()

    def initialize(self, evaluation_context: EvaluationContext) -> None:
        self.started.wait(30)


class FailingProvider(GatekeeperProvider):
    """Gatekeeper's provider whose start-up fails with `error`."""

    def __init__(self, app: Flask, error: Exception) -> None:
        super().__init__(app)
        self.error = error

    def initialize(self, evaluation_context: EvaluationContext) -> None:
        raise self.error


@given("a stable provider with retrievable context is registered")
def stable_provider(world):
    """Gatekeeper's provider, whose flag RECORDER's rule keeps the context it gets."""
    api.set_provider_and_wait(GatekeeperProvider(world["app"]), DOMAIN)
    world["client"] = api.get_client(DOMAIN)


@given(parsers.parse("a {status} provider"))
def provider_in_state(world, status):
    app = world["app"]
    if status == "stable":
        api.set_provider_and_wait(GatekeeperProvider(app), DOMAIN)
    elif status == "not ready":
        provider = NotReadyProvider(app)
        world["release"] = provider.started.set
        api.set_provider(provider, DOMAIN)
    elif status in ("error", "fatal"):
        error = ProviderFatalError("fatal") if status == "fatal" else GeneralError("failed to start")
        with pytest.raises(type(error)):
            api.set_provider_and_wait(FailingProvider(app, error), DOMAIN)
    else:
        assert status == "stale", status
        provider = GatekeeperProvider(app)
        api.set_provider_and_wait(provider, DOMAIN)
        provider.emit_provider_stale(ProviderEventDetails(message="the snapshot is old"))
    world["client"] = api.get_client(DOMAIN)


@then(parsers.parse('the provider status should be "{status}"'))
def provider_status(world, status):
    assert world["client"].get_provider_status() == ProviderStatus[status]


# --- Flags, contexts, evaluations -----------------------------------------------------------------------


def typed(kind: str, text: str) -> Any:
    """A value of the suite's tables, as the type named."""
    kind = kind.lower()
    if kind == "boolean":
        return {"true": True, "false": False}[text]
    if kind == "integer":
        return int(text)
    if kind == "float":
        return float(text)
    if kind == "object":
        return json.loads(text.replace('\\"', '"'))
    return text


@given(parsers.re(r'a (?P<kind>\w+)-flag with key "(?P<key>[^"]*)" and a fallback value "(?P<default>.*)"'))
def a_flag(world, kind, key, default):
    world.update(kind=kind.lower(), key=key, default=typed(kind, default))


@given(
    parsers.re(
        r'a context containing a key "(?P<key>[^"]+)", with type "(?P<kind>\w+)" '
        r'and with value "(?P<value>.*)"'
    )
)
def context_entry(world, key, kind, value):
    world["context"][key] = typed(kind, value)


@given(parsers.parse('a context containing a key "{key}" with null value'))
def context_null_entry(world, key):
    world["context"][key] = None


def evaluate(world: dict[str, Any], options: FlagEvaluationOptions | None = None, *, run: Any = None) -> Any:
    method = getattr(world["client"], f"get_{world['kind']}_details{'_async' if run else ''}")
    context = world.get("given_context") or EvaluationContext(attributes=dict(world["context"]))
    result = method(world["key"], world["default"], context, options)
    world["details"] = run(result) if run else result
    return world["details"]


@when("the flag was evaluated with details")
def evaluated(world):
    evaluate(world)


@when("the flag was evaluated with details asynchronously")
def evaluated_asynchronously(world):
    evaluate(world, run=asyncio.run)


@then("the evaluation should complete without blocking")
def completed(world):
    assert world["details"].error_code is None


@then(parsers.parse('the resolved details value should be "{value}"'))
@then('the resolved details value should be ""')
def resolved_value(world, value=""):
    assert world["details"].value == typed(world["kind"], value)
    assert type(world["details"].value) is type(typed(world["kind"], value))


@then(parsers.parse('the reason should be "{reason}"'))
def reason(world, reason):
    assert world["details"].reason == reason


@then(parsers.parse('the error-code should be "{code}"'))
def error_code(world, code):
    assert world["details"].error_code == ErrorCode[code]


@then(parsers.parse('the flag key should be "{key}"'))
def flag_key(world, key):
    assert world["details"].flag_key == key


@then(parsers.parse('the variant should be "{variant}"'))
def variant(world, variant):
    assert world["details"].variant == variant


@then("the resolved metadata should contain")
def metadata_contains(world, datatable):
    header, *rows = datatable
    assert header == ["key", "metadata_type", "value"]
    for key, kind, value in rows:
        assert world["details"].flag_metadata[key] == typed(kind, value)


@then("the resolved metadata is empty")
def metadata_empty(world):
    assert not world["details"].flag_metadata


# --- Hooks ------------------------------------------------------------------------------------------------


class RecordingHook(Hook):
    """Notes each stage it runs at, and the details the after and finally stages get."""

    def __init__(self, name: str, calls: list[tuple[str, str]]) -> None:
        self.name, self.calls, self.details = name, calls, {}

    def before(self, hook_context, hints):
        self.calls.append((self.name, "before"))

    def after(self, hook_context, details, hints):
        self.calls.append((self.name, "after"))
        self.details["after"] = details

    def error(self, hook_context, exception, hints):
        self.calls.append((self.name, "error"))

    def finally_after(self, hook_context, details, hints):
        self.calls.append((self.name, "finally"))
        self.details["finally"] = details


@given("a client with added hook")
def client_hook(world):
    world["hook"] = RecordingHook("client", world["calls"])
    world["client"].add_hooks([world["hook"]])


@then(parsers.parse('the "{stage}" hook should have been executed'))
def hook_ran(world, stage):
    assert ("client", stage) in world["calls"]


@then(parsers.parse('the "{stages}" hooks should be called with evaluation details'))
def hooks_got_details(world, stages, datatable):
    header, *rows = datatable
    assert header == ["data_type", "key", "value"]
    for stage in stages.split(", "):
        details = world["hook"].details[stage]
        for kind, key, value in rows:
            expected = None if value == "null" else typed(kind, value)
            assert getattr(details, key) == expected, (stage, key)


@given("evaluation options containing specific hooks")
def option_hooks(world):
    world["options"] = FlagEvaluationOptions(
        hooks=[RecordingHook("first", world["calls"]), RecordingHook("second", world["calls"])]
    )


@when("the flag was evaluated with details using the evaluation options")
def evaluated_with_options(world):
    evaluate(world, world["options"])


@then("the specified hooks should execute during evaluation")
def option_hooks_ran(world):
    assert {("first", "before"), ("second", "before"), ("first", "after"), ("second", "after")} <= set(
        world["calls"]
    )


@then("the hook order should be maintained")
def hook_order(world):
    # Before hooks in the order given; after and finally hooks in reverse (specification 4.4.2).
    assert world["calls"] == [
        ("first", "before"),
        ("second", "before"),
        ("second", "after"),
        ("first", "after"),
        ("second", "finally"),
        ("first", "finally"),
    ]


@given("an evaluation context with modifiable data")
def modifiable_context(world):
    world["original"] = {"email": "someone@example.com", "teams": ["a", "b"]}
    world["given_context"] = EvaluationContext("user-1", world["original"])


@then("the original evaluation context should remain unmodified")
def context_unmodified(world):
    assert world["given_context"].attributes == {"email": "someone@example.com", "teams": ["a", "b"]}
    assert world["given_context"].targeting_key == "user-1"


@then("the evaluation details should be immutable")
def details_immutable(world):
    # Specification 1.4.15.1: the flag metadata in the details is immutable.
    with pytest.raises(TypeError):
        world["details"].flag_metadata["added"] = True


# --- Context merging ------------------------------------------------------------------------------------


def add_context(world: dict[str, Any], level: str, key: str, value: str) -> None:
    """Put {key: value} in the context of `level`: API, Transaction, Client, Invocation or Before Hooks."""
    entries = world["levels"].setdefault(level, {})
    entries[key] = value
    context = EvaluationContext(attributes=dict(entries))
    if level == "API":
        api.set_evaluation_context(context)
    elif level == "Transaction":
        api.set_transaction_context_propagator(ContextVarsTransactionContextPropagator())
        api.set_transaction_context(context)
    elif level == "Client":
        world["client"].context = context
    elif level == "Invocation":
        world["given_context"] = context
    else:
        assert level == "Before Hooks", level

        class ContextHook(Hook):
            def before(self, hook_context, hints):
                return context

        world["before_hooks"] = FlagEvaluationOptions(hooks=[ContextHook()])


@given(parsers.parse('A context entry with key "{key}" and value "{value}" is added to the "{level}" level'))
def context_at_level(world, key, value, level):
    add_context(world, level, key, value)


@given("A table with levels of increasing precedence")
def levels_table(world, datatable):
    world["order"] = [row[0] for row in datatable]


@given(
    parsers.parse(
        'Context entries for each level from API level down to the "{last}" level, with key "{key}" '
        'and value "{value}"'
    )
)
def context_down_to(world, last, key, value):
    order = world["order"]
    for level in order[: order.index(last) + 1]:
        add_context(world, level, key, level if level != last else value)


@when("Some flag was evaluated")
def some_flag_evaluated(world):
    ContextRecorderFFConfig.seen.clear()
    world.update(kind="boolean", key=RECORDER, default=False)
    evaluate(world, world.get("before_hooks"))
    assert world["details"].error_code is None, world["details"].error_message


@then(parsers.parse('The merged context contains an entry with key "{key}" and value "{value}"'))
def merged_context(world, key, value):
    [context] = ContextRecorderFFConfig.seen  # what the flag's rule got: the context for that call
    assert context[key] == value
