"""The admin dashboard's blueprint: who may open it, its CSRF tokens, and what its pages share.

A blueprint (`gatekeeper`) with its own templates and static files in this folder. Its pages are in
dashboard_list.py (the flag list), dashboard_flags.py (a flag, the audit log, overrides),
dashboard_targeting.py (weights, targets, schedules, groups) and dashboard_users.py (the user look-up);
importing `gatekeeper_control` registers them.

Who may open it is the engine's `can_manage(user)` (default: a true `is_admin`), asked with the engine's
user hook, so it needs no particular login library. Every change is a POST answered by a
redirect (a flag page's refused form: that page again, 422, the error beside the field) and carries a signed
CSRF token that the dashboard checks itself (Flask-WTF's when it is installed,
else its own), so the app needs no app-wide `CSRFProtect`, and works unchanged with one. Reads come from the
store's snapshot, so the pages keep working (and say so) when the database is down.
"""

from __future__ import annotations

import hmac
import math
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from itsdangerous import BadData, SignatureExpired, URLSafeTimedSerializer
from werkzeug.wrappers import Response

from .audit import clean_reason
from .checks import current_config_map, shorten
from .engine import gatekeeper
from .parsing import page_number
from .store import StoreError, store

try:  # optional: with Flask-WTF installed, its tokens, so that an app's CSRFProtect accepts ours and v.v.
    from flask_wtf.csrf import generate_csrf as _wtf_generate_csrf
    from flask_wtf.csrf import validate_csrf as _wtf_validate_csrf
    from wtforms import ValidationError as _WTFValidationError
except ImportError:
    _wtf_generate_csrf = _wtf_validate_csrf = None

# Its own templates (templates/gatekeeper/, which an app overrides by putting a file at the same path in its
# own templates folder) and static files (served under the dashboard's prefix, at /static/).
bp = Blueprint("gatekeeper", __name__, template_folder="templates", static_folder="static")

AUDIT_PER_PAGE = 50
FLAG_AUDIT_ENTRIES = 5  # a flag page shows its last few changes; the audit log has the rest
# Lists that grow with what admins make (groups, a group's members, a flag's pending changes) are shown this
# many to a page, so no page grows with them (5,000 members made a 3 MB page).
PER_PAGE = 100
AUDIT_ACTORS_SHOWN = 100  # the audit log's "Who" filter offers the most recent actors
# Flash messages live in the session cookie: what an admin typed is cut short, and only the newest few are
# kept (a client that never follows the redirects would pile them up), so no cookie outgrows 4 KB.
FLASH_LENGTH = 300
MAX_FLASHES = 5


CSRF_FIELD = "csrf_token"
CSRF_MAX_AGE = 3600  # seconds a form stays valid, as Flask-WTF's default
_CSRF_SALT = "gatekeeper-dashboard-csrf"
_CSRF_SESSION_KEY = "gatekeeper_csrf"


@bp.before_request
def _require_admin() -> Response | None:
    """Anonymous visitors go to the app's login view (401 when it has none); others need `can_manage`.

    The dashboard's stylesheet and script are public, as an app's static files are: the 403 page a
    signed-in non-admin gets uses them too."""
    if request.endpoint == f"{bp.name}.static":
        return None
    gk = gatekeeper.current_gatekeeper()
    if gk.user_id is None:
        return _login_or_401()
    if not gatekeeper.get_state().can_manage(gk.user):
        abort(403)
    return None


@bp.before_request
def _check_csrf() -> None:
    """Every POST carries the token its form was given; nothing changes without it (400)."""
    if request.method != "POST" or not current_app.config.get("WTF_CSRF_ENABLED", True):
        return
    if g.get("csrf_valid"):  # the app's CSRFProtect checked this request already
        return
    problem = _csrf_problem(request.form.get(CSRF_FIELD, ""))
    if problem is not None:
        abort(400, description=f"{problem} Nothing was changed: reload the page and try again.")


@bp.after_request
def _never_cached(response: Response) -> Response:
    """No admin page is kept by a browser or a shared cache: a back button after logout, or a proxy, must
    not show who is overridden to what."""
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.errorhandler(403)
def _forbidden(error: Exception) -> tuple[str, int]:
    """The dashboard's own 403, in its layout: who may open it, how to become one, and a way back."""
    return render_template(
        "gatekeeper/403.html",
        can_create_admins="users" in current_app.cli.commands,
    ), 403


@bp.context_processor
def _store_status() -> dict[str, Any]:
    return {
        "store_available": store.available,
        "store_error": store.error,
        "store_missing_table": store.missing_table,
        "store_loaded_at": store.snapshot().loaded_at,
        "store_checks_users": store.checks_users,
    }


@bp.context_processor
def _who() -> dict[str, str]:
    """The admin the layout names, as the audit log will."""
    return {"gatekeeper_user": current_actor()}


@bp.context_processor
def _csrf_token_function() -> dict[str, Callable[[], str]]:
    """`csrf_token()` for the dashboard's forms, unless the app already provides one (Flask-WTF's)."""
    if "csrf_token" in current_app.jinja_env.globals:
        return {}
    return {"csrf_token": _csrf_token}


def _login_or_401() -> Response:
    """The app's login view with `next`: GATEKEEPER_LOGIN_VIEW (an endpoint), else Flask-Login's."""
    login_view = current_app.config.get("GATEKEEPER_LOGIN_VIEW")
    if login_view:
        return redirect(url_for(login_view, next=request.full_path.rstrip("?")))
    login_manager = getattr(current_app, "login_manager", None)
    if login_manager is not None:
        return login_manager.unauthorized()
    abort(401)


def _csrf_token() -> str:
    """A signed token bound to this session: Flask-WTF's when installed, else the dashboard's own."""
    if _wtf_generate_csrf is not None:
        return _wtf_generate_csrf()
    if _CSRF_SESSION_KEY not in session:
        session[_CSRF_SESSION_KEY] = secrets.token_hex(20)
    return _csrf_serializer().dumps(session[_CSRF_SESSION_KEY])


def _csrf_problem(token: str) -> str | None:
    """What is wrong with a form's CSRF token, in a sentence; None when it is valid for this session."""
    if _wtf_validate_csrf is not None:
        try:
            _wtf_validate_csrf(token)
        except _WTFValidationError as error:
            return str(error)
        return None
    if not token:
        return "The CSRF token is missing."
    expected = session.get(_CSRF_SESSION_KEY)
    try:
        value = _csrf_serializer().loads(token, max_age=CSRF_MAX_AGE)
    except SignatureExpired:
        return "The CSRF token has expired."
    except BadData:
        return "The CSRF token is invalid."
    if not (isinstance(expected, str) and isinstance(value, str) and hmac.compare_digest(value, expected)):
        return "The CSRF token does not belong to this session."
    return None


def _csrf_serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key, salt=_CSRF_SALT)


# --- Helpers ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    """One page of a list a dashboard page shows; `url(n)` links to page n of the same view."""

    items: list[Any]
    page: int
    per_page: int
    total: int
    url: Callable[[int], str]

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))


def page_of(
    items: Sequence[Any], page_text: str | None, url: Callable[[int], str], per_page: int = PER_PAGE
) -> Page:
    """The page `page_text` (a query-string value; past the end: the last page) of `items`."""
    total = len(items)
    page = min(page_number(page_text), max(1, math.ceil(total / per_page)))
    start = (page - 1) * per_page
    return Page(list(items[start : start + per_page]), page, per_page, total, url)


@bp.app_template_global("gatekeeper_relative_time")
def relative_time(moment: datetime, now: datetime | None = None) -> str:
    """How far `moment` is from now, in a few words: "just now", "3 min ago", "2 h ago", "5 days ago", and
    for a time still to come "in 30 s", "in 3 h", "in 1 day"."""
    seconds = int(((now or datetime.now(UTC)) - moment).total_seconds())
    if 0 <= seconds < 10:
        return "just now"
    ahead, seconds = seconds < 0, abs(seconds)
    words = f"{seconds} s"
    for size, unit in ((86400, " days"), (3600, " h"), (60, " min")):
        if seconds >= size:
            # Rounded ahead: a change scheduled +3h still reads "in 3 h" a moment later.
            count = (seconds + size // 2) // size if ahead else seconds // size
            words = f"{count}{' day' if unit == ' days' and count == 1 else unit}"
            break
    return f"in {words}" if ahead else f"{words} ago"


@bp.app_template_global("gatekeeper_axis_ticks")
def axis_ticks(peak: float, most: int = 4) -> list[int]:
    """A chart's y-axis: 0 and up to `most` evenly spaced round values (1, 2 or 5 times a power of ten), the
    last at or above `peak`; the chart's lines are scaled to that last one."""
    rough = max(peak, 1) / most
    magnitude = 10 ** math.floor(math.log10(rough))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= rough)
    step = max(1, int(step))
    return list(range(0, step * math.ceil(max(peak, 1) / step) + 1, step))


def config_or_404(name: str) -> Any:
    """The flag's config; 404 for a POST to a flag the code does not have (a GET goes back to the list)."""
    config = current_config_map().get(name)
    if config is None:
        abort(404)
    return config


def current_actor() -> str:
    """Who the audit log names for a change made here: the admin's email or name, or their id."""
    gk = gatekeeper.current_gatekeeper()
    for field in ("email", "username", "name"):
        value = gatekeeper.user_attribute(gk.user, field)
        if isinstance(value, str) and value:
            return value
    return f"user {gk.user_id}"


REASON_FIELD = "reason"


def form_reason() -> str | None:
    """The optional "Reason" a change form posted; every audited write takes it as `reason=`."""
    return request.form.get(REASON_FIELD) or None


def change(operation: Any, *args: str, unchanged: str, note: str = "") -> None:
    try:
        entry = operation(*args, actor=current_actor(), reason=form_reason())
    except StoreError as exc:
        flash_message(str(exc), "error")
    else:
        message = entry.summary + note if entry else f"{unchanged} Nothing changed."
        flash_message(message, "success" if entry else "info")


def flash_message(message: str, category: str) -> None:
    """Flash `message`, cut to FLASH_LENGTH: it rides in the session cookie, and may quote what was typed."""
    pending = session.get("_flashes")  # Flask's own key for messages not shown yet
    if pending and len(pending) >= MAX_FLASHES:
        session["_flashes"] = pending[1 - MAX_FLASHES :]
    flash(shorten(message, FLASH_LENGTH), category)


def back_to_flag(name: str, section: str | None = None) -> Response:
    """The flag page, scrolled to `section` (the id of the form's section) when given."""
    return redirect(url_for(".flag", name=name, _anchor=section))


# --- A flag page's forms come back to themselves ------------------------------------------------------------


@dataclass(frozen=True)
class FormError:
    """A flag-page form that saved nothing: its section's id, the field at fault, and what was wrong."""

    form: str
    field: str
    message: str


def flag_page_with_error(name: str, form: str, field: str, message: str) -> Response | tuple[str, int]:
    """The flag page again (422), with what was typed in `form` kept and `message` beside `field`.

    The flag view is asked by endpoint, so the modules with POST routes need not import the one with the
    page. The form's action ends in `#form`, so the browser shows the page at the form, script or not."""
    g.gk_form_error = FormError(form, field, shorten(message, FLASH_LENGTH))
    page = current_app.view_functions[f"{bp.name}.flag"](name=name)
    if isinstance(page, Response):  # no such flag: the list, with a message
        return page
    return page, 422


def change_on_flag(
    name: str,
    form: str,
    field: str,
    operation: Any,
    *args: Any,
    unchanged: str,
    note: str = "",
    section: str | None = None,
) -> Response | tuple[str, int]:
    """`change` for a flag page's form: on success back to its section (`section`, else `form`) with a
    message; on an error the page again with the error beside `field` and the typed values kept."""
    try:
        clean_reason(form_reason())  # a reason the store would refuse is the reason field's error
    except StoreError as exc:
        return flag_page_with_error(name, form, "reason", str(exc))
    try:
        entry = operation(*args, actor=current_actor(), reason=form_reason())
    except StoreError as exc:
        return flag_page_with_error(name, form, field, str(exc))
    message = entry.summary + note if entry else f"{unchanged} Nothing changed."
    flash_message(message, "success" if entry else "info")
    return back_to_flag(name, section or form)


@bp.context_processor
def _form_state() -> dict[str, Any]:
    """`form_error` (a FormError or None) and `typed(form, field, default)`: what the failed form held."""
    error = g.get("gk_form_error")

    def typed(form: str, field: str, default: Any = "") -> Any:
        if error is not None and error.form == form:
            return request.form.get(field, default)
        return default

    return {"form_error": error, "typed": typed}
