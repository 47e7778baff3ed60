"""The admin API's blueprint: bearer tokens, problem responses, validation, and the OpenAPI document.

JSON over HTTP under the dashboard's prefix, at `<prefix>/api/v1/` (blueprint `gatekeeper_api`). Its
operations are in api_flags.py (flags and everything stored for them) and api_admin.py (groups, segments,
schedules, the audit log, users, export and import); each is declared with `operation(...)`, which
registers the route, the scope it needs and the schemas (api_schemas.py) its body and query are validated
against, and the same declaration writes `openapi.json`. So the document cannot drift from what is checked.

Who may call: a token (tokens.py) sent as `Authorization: Bearer gk_...`, looked up in the database on every
call (a revoked token fails at once, in every process). Cookies are never read, so a dashboard session
never authenticates the API and the API needs no CSRF token (it is exempt from the app's CSRFProtect); a
token never opens the dashboard, which reads only its session. Changes go through the same store
functions as the dashboard's, audited as `token:NAME`. Errors are RFC 9457 problem details
(`application/problem+json`); a refused request writes nothing. Calls are rate-limited per token with the
app's Flask-Limiter, when it has one (`GATEKEEPER_API_RATE_LIMIT`, default 600 per minute).
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Flask, current_app, g, jsonify, request
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from .api_schemas import NAME_PATTERN, SCHEMAS, ref
from .errors import (
    InUseError,
    ScheduleError,
    StoreError,
    StoreUnavailableError,
    UnknownFlagError,
    UnknownGroupError,
    UnknownUserError,
)
from .prerequisites import PrerequisiteError
from .tokens import SCOPES, TokenInfo, authenticate

try:  # the baked project's dependency; optional for a copied folder, which then serves no API
    import jsonschema
except ImportError:
    jsonschema = None

bp = Blueprint("gatekeeper_api", __name__)

API_VERSION = "1"
DEFAULT_RATE_LIMIT = "600 per minute"
PROBLEM_TYPE = "about:blank"
_PATH_PARAMETER = re.compile(r"\{(\w+)\}")


class Problem(Exception):
    """An RFC 9457 problem: `status`, a short `title`, and a `detail` saying what to fix."""

    def __init__(self, status: int, detail: str, *, title: str | None = None, errors: list | None = None):
        super().__init__(detail)
        self.status, self.detail, self.errors = status, detail, errors
        self.title = title or _TITLES.get(status, "Error")


_TITLES = {
    400: "Bad request",
    401: "Not authenticated",
    403: "Not allowed",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    415: "Unsupported media type",
    422: "Unprocessable content",
    429: "Too many requests",
    503: "Store unavailable",
}


def problem_response(problem: Problem) -> Response:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE,
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
    }
    if problem.errors:
        body["errors"] = problem.errors
    response = jsonify(body)
    response.status_code = problem.status
    response.mimetype = "application/problem+json"
    if problem.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="gatekeeper"'
    return response


def problem_for(error: StoreError) -> Problem:
    """The status a store error answers with: 404 for what does not exist, 409 for a conflict with what is
    stored, 503 for an unreachable database, 422 for anything else the store refused."""
    if isinstance(error, StoreUnavailableError):
        return Problem(503, str(error))
    if isinstance(error, UnknownFlagError | UnknownGroupError | UnknownUserError):
        return Problem(404, str(error))
    if isinstance(error, ScheduleError):
        return Problem(422, str(error))
    # A conflict with what is stored: a circle of prerequisites, a group still in use, a name taken, an undo
    # overtaken by a later change (the store says "already" and "cannot be undone" for those two, with no
    # class of their own).
    conflict = isinstance(error, PrerequisiteError | InUseError)
    if conflict or "already" in str(error) or "cannot be undone" in str(error):
        return Problem(409, str(error))
    return Problem(422, str(error))


@bp.errorhandler(Problem)
def _problem(problem: Problem) -> Response:
    return problem_response(problem)


@bp.errorhandler(StoreError)
def _store_error(error: StoreError) -> Response:
    return problem_response(problem_for(error))


@bp.errorhandler(HTTPException)
def _http_error(error: HTTPException) -> Response:
    """Werkzeug's errors (a 429 from the rate limit, a 405) as problems too."""
    status = error.code or 500
    response = problem_response(Problem(status, error.description or _TITLES.get(status, "Error")))
    if status == 429 and error.get_response().headers.get("Retry-After"):
        response.headers["Retry-After"] = error.get_response().headers["Retry-After"]
    return response


# By code too: Flask prefers an app's handler for a code (the app's 429 page) to a blueprint's for a class.
for _code in (400, 404, 405, 413, 415, 429):
    bp.register_error_handler(_code, _http_error)


@bp.after_request
def _never_cached(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response


# --- Declaring operations -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Operation:
    """One endpoint: what the OpenAPI document says of it, and what the wrapper checks."""

    method: str
    path: str  # OpenAPI style: /flags/{flag}
    name: str
    summary: str
    scope: str | None  # None: no token needed
    body: str | None  # a name in SCHEMAS
    query: Mapping[str, Any] | None  # a JSON Schema of the query string
    response: str  # a name in SCHEMAS
    status: int


OPERATIONS: list[Operation] = []


def operation(
    method: str,
    path: str,
    *,
    summary: str,
    response: str,
    scope: str | None = "read",
    body: str | None = None,
    query: Mapping[str, Any] | None = None,
    status: int = 200,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a view at `path` for `method`: it runs only with a token of `scope`, gets its path
    parameters, `body` (the validated JSON) when it takes one and `query` (validated) when it declares one,
    and returns what `response` describes (a dict, sent as JSON with `status`)."""

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        op = Operation(method, path, view.__name__, summary, scope, body, query, response, status)
        OPERATIONS.append(op)

        @functools.wraps(view)
        def endpoint(**path_values: str) -> Response:
            if scope is not None:
                g.gatekeeper_api_token = require_token(scope)
            for value in path_values.values():
                if not re.fullmatch(NAME_PATTERN, value) and not value.isdigit():
                    raise Problem(
                        404, f"{value[:60]!r} names nothing here: names are letters, digits, '_.@-'."
                    )
            arguments: dict[str, Any] = dict(path_values)
            if query is not None:
                arguments["query"] = _validated(query, request.args.to_dict(), "query")
            if body is not None:
                arguments["body"] = _validated(SCHEMAS[body], _json_body(), "body")
            result = view(**arguments)
            answer = jsonify(result)
            answer.status_code = status
            return answer

        bp.add_url_rule(_PATH_PARAMETER.sub(r"<\1>", path), view.__name__, endpoint, methods=[method])
        return view

    return decorate


def require_token(scope: str) -> TokenInfo:
    """The request's token, when it grants `scope`; else a 401 (none, unknown, revoked, expired) or 403."""
    header = request.headers.get("Authorization", "")
    kind, _, raw = header.partition(" ")
    if kind.lower() != "bearer" or not raw.strip():
        raise Problem(
            401, "Send a token: `Authorization: Bearer gk_...` (make one with `flask gk tokens create`)."
        )
    info = authenticate(raw.strip(), SCOPES)
    if info is None:
        raise Problem(401, "This token is unknown, revoked or expired: make a new one.")
    if not info.grants(scope):
        raise Problem(403, f"Token {info.name} has scope {info.scope}; this needs a {scope} token.")
    return info


def actor() -> str:
    """Who the audit log names for this request's changes: the token's name."""
    return f"token:{g.gatekeeper_api_token.name}"


def _json_body() -> Any:
    data = request.get_data(cache=True)
    if not data.strip():
        return {}
    if not request.is_json:
        raise Problem(415, "Send the body as JSON, with `Content-Type: application/json`.")
    try:
        return request.get_json(force=True)
    except Exception:  # werkzeug's BadRequest, or a decoding error
        raise Problem(400, "The body is not valid JSON: check its quotes, commas and brackets.") from None


def _validated(schema: Mapping[str, Any], value: Any, where: str) -> Any:
    errors = sorted(_validator(schema).iter_errors(value), key=lambda error: list(error.absolute_path))
    if errors:
        listed = [
            {
                "pointer": "/" + "/".join(str(part) for part in error.absolute_path),
                "detail": error.message[:300],
            }
            for error in errors[:20]
        ]
        first = listed[0]
        raise Problem(
            422, f"The {where} is not as documented: {first['pointer']}: {first['detail']}", errors=listed
        )
    return value


_VALIDATORS: dict[int, Any] = {}


def _validator(schema: Mapping[str, Any]) -> Any:
    """A validator for `schema`, whose `$ref`s point into SCHEMAS as the OpenAPI document's do."""
    validator = _VALIDATORS.get(id(schema))
    if validator is None:
        whole = {**schema, "components": {"schemas": SCHEMAS}}
        validator = jsonschema.Draft202012Validator(
            whole, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
        )
        _VALIDATORS[id(schema)] = validator
    return validator


# --- The OpenAPI document -----------------------------------------------------------------------------------


def openapi_document(server_url: str = "") -> dict[str, Any]:
    """OpenAPI 3.1, written from OPERATIONS and SCHEMAS: what every endpoint takes and answers."""
    paths: dict[str, dict[str, Any]] = {}
    problem = {"application/problem+json": {"schema": ref("Problem")}}
    for op in OPERATIONS:
        parameters = [
            {
                "name": name,
                "in": "path",
                "required": True,
                "schema": {"type": "string", "pattern": NAME_PATTERN},
            }
            for name in _PATH_PARAMETER.findall(op.path)
        ]
        for name, schema in ((op.query or {}).get("properties") or {}).items():
            parameters.append({"name": name, "in": "query", "required": False, "schema": schema})
        responses: dict[str, Any] = {
            str(op.status): {
                "description": "OK",
                "content": {"application/json": {"schema": ref(op.response)}},
            },
            "default": {
                "description": "A problem (RFC 9457): what went wrong and what to fix.",
                "content": problem,
            },
        }
        for code in (400, 404, 415, 422, 429, 503) + ((401, 403) if op.scope else ()):
            responses[str(code)] = {"description": _TITLES[code], "content": problem}
        entry: dict[str, Any] = {
            "operationId": op.name,
            "summary": op.summary,
            "parameters": parameters,
            "responses": responses,
        }
        if op.scope is not None:
            entry["security"] = [{"token": []}]
            entry["description"] = f"Needs a token of scope `{op.scope}`" + (
                " or `write`." if op.scope == "read" else "."
            )
        if op.body is not None:
            entry["requestBody"] = {
                "required": op.body not in ("ReasonBody",),
                "content": {"application/json": {"schema": ref(op.body)}},
            }
        paths.setdefault(op.path, {})[op.method.lower()] = entry
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Gatekeeper admin API",
            "version": API_VERSION,
            "description": "Flags, targeting, groups, segments, schedules, the audit log, export and import.",
        },
        "servers": [{"url": server_url}],
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "token": {"type": "http", "scheme": "bearer", "description": "gk_... tokens"}
            },
        },
    }


@bp.get("/openapi.json")
def openapi_json() -> Response:
    """The document, public like any API description; the operations it lists need tokens."""
    return jsonify(openapi_document(request.script_root + bp_url_prefix()))


def bp_url_prefix() -> str:
    return current_app.extensions["gatekeeper_api_prefix"]


@bp.route("/<path:rest>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
def _unknown(rest: str) -> Response:
    """Anything else under the API's prefix is a problem too, never the app's HTML 404 page."""
    raise Problem(404, f"There is no endpoint /{rest[:80]} for {request.method}: see openapi.json.")


# --- Wiring -------------------------------------------------------------------------------------------------


def init_app(app: Flask, dashboard_prefix: str) -> None:
    """Serve the API at `<dashboard_prefix>/api/v1`, exempt it from the app's CSRFProtect (it reads no
    cookie) and rate-limit it per token with the app's Flask-Limiter, when it has those extensions. Without
    the jsonschema package (a copied folder may lack it) the API is not served."""
    if jsonschema is None:
        app.logger.warning("gatekeeper: the admin API needs the jsonschema package; it is not served.")
        return
    prefix = dashboard_prefix.rstrip("/") + "/api/v" + API_VERSION
    app.extensions["gatekeeper_api_prefix"] = prefix
    csrf = app.extensions.get("csrf")
    if csrf is not None and hasattr(csrf, "exempt"):
        csrf.exempt(bp)
    for limiter in app.extensions.get("limiter", ()):
        if not getattr(limiter, "gatekeeper_api_limited", False):  # one limit per limiter, for every app
            limiter.limit(_rate_limit, key_func=_rate_key, scope="gatekeeper-api")(bp)
            limiter.gatekeeper_api_limited = True
    app.register_blueprint(bp, url_prefix=prefix)


def _rate_limit() -> str:
    return current_app.config.get("GATEKEEPER_API_RATE_LIMIT") or DEFAULT_RATE_LIMIT


def _rate_key() -> str:
    """One bucket per token (its hash: the limiter's storage never holds a token), else per address."""
    header = request.headers.get("Authorization", "")
    if header:
        return "token:" + hashlib.sha256(header.encode("utf-8", "surrogatepass")).hexdigest()
    return "address:" + (request.remote_addr or "")
