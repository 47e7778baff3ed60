"""The dashboard's webhooks page: the endpoints, each one's recent deliveries and failures, adding one (its
secret shown once), removing one, "send test" and "retry now"."""

from __future__ import annotations

from flask import redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from .dashboard import bp, current_actor, flash_message
from .errors import StoreError
from .webhooks import RECENT, webhooks


@bp.get("/webhooks")
def webhook_list() -> str:
    """Every endpoint with its recent attempts; a form to add one."""
    return _page()


@bp.post("/webhooks")
def add_webhook() -> str | Response:
    """Add an endpoint. The answer is the page itself, not a redirect, so that its signing secret is shown
    once and never rides in the session cookie a flash message would use."""
    url, kind = request.form.get("url", ""), request.form.get("kind", "standard")
    try:
        endpoint, secret = webhooks.add(url, kind=kind, actor=current_actor())
    except StoreError as exc:
        flash_message(str(exc), "error")
        return redirect(url_for(".webhook_list"))
    return _page(added=endpoint, secret=secret)


@bp.post("/webhooks/<int:endpoint_id>/test")
def test_webhook(endpoint_id: int) -> Response:
    try:
        delivery = webhooks.send_test(endpoint_id, actor=current_actor())
    except StoreError as exc:
        flash_message(str(exc), "error")
    else:
        if delivery.ok:
            message, category = f"HTTP {delivery.status} in {delivery.milliseconds} ms.", "success"
        else:
            message, category = f"not delivered ({delivery.error}); it will be retried.", "error"
        flash_message(f"Test message {message}", category)
    return redirect(url_for(".webhook_list"))


@bp.post("/webhooks/<int:endpoint_id>/retry")
def retry_webhook(endpoint_id: int) -> Response:
    try:
        count = webhooks.retry_now(endpoint_id)
    except StoreError as exc:
        flash_message(str(exc), "error")
    else:
        flash_message(f"{count} message{'s' if count != 1 else ''} will be sent again now.", "info")
    return redirect(url_for(".webhook_list"))


@bp.post("/webhooks/<int:endpoint_id>/remove")
def remove_webhook(endpoint_id: int) -> Response:
    try:
        entry = webhooks.remove(endpoint_id, actor=current_actor())
    except StoreError as exc:
        flash_message(str(exc), "error")
    else:
        if entry is None:
            flash_message(f"There is no webhook #{endpoint_id}. Nothing changed.", "info")
        else:
            flash_message(entry.summary, "success")
    return redirect(url_for(".webhook_list"))


def _page(**extra: object) -> str:
    try:
        endpoints = webhooks.endpoints()
        deliveries = {endpoint.id: webhooks.deliveries(endpoint.id) for endpoint in endpoints}
        error = None
    except StoreError as exc:
        endpoints, deliveries, error = [], {}, str(exc)
    return render_template(
        "gatekeeper/webhooks.html",
        endpoints=endpoints,
        deliveries=deliveries,
        recent=RECENT,
        error=error,
        **extra,
    )
