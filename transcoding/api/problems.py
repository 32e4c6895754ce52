"""Every API error as RFC 9457 problem details (`application/problem+json`):

    {"type": "about:blank", "title": "Not Found", "status": 404,
     "detail": "No video 42.", "errors": {"title": ["This field may not be blank."]}}

`detail` is always one line a person can act on; `errors` (validation only) maps each field to
its messages. Errors the views did not expect are 500 problems without internals (the
traceback goes to the log)."""

import logging
from http import HTTPStatus

from django.core.exceptions import PermissionDenied
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.views import exception_handler as drf_exception_handler

from transcoding.errors import InvalidRequest, one_line

log = logging.getLogger(__name__)

PROBLEM_TYPE = "application/problem+json"


def _first_message(detail) -> str:
    """The first message of a nested DRF error detail, prefixed by its field."""
    if isinstance(detail, dict):
        for field, value in detail.items():
            message = _first_message(value)
            return message if field in ("non_field_errors", "detail") else f"{field}: {message}"
    if isinstance(detail, list):
        return _first_message(detail[0]) if detail else "Invalid request."
    return str(detail)


def problem(status_code: int, detail: str, **extra) -> JsonResponse:
    body = {
        "type": "about:blank",
        "title": HTTPStatus(status_code).phrase,
        "status": status_code,
        "detail": " ".join(str(detail).split())[:500],
        **extra,
    }
    return JsonResponse(body, status=status_code, content_type=PROBLEM_TYPE)


def exception_handler(exc, context):
    if isinstance(exc, InvalidRequest):
        exc = exceptions.ValidationError({"detail": str(exc)})
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or "Not found.")
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or "Permission denied.")
    response = drf_exception_handler(exc, context)
    if response is None:
        log.exception("API error", exc_info=exc)
        return problem(status.HTTP_500_INTERNAL_SERVER_ERROR, "Internal error; it has been logged.")
    extra = {}
    if isinstance(exc, exceptions.ValidationError) and isinstance(exc.detail, dict):
        fields = {k: v for k, v in exc.detail.items() if k not in ("detail", "non_field_errors")}
        if fields:
            extra["errors"] = fields
    result = problem(response.status_code, _first_message(exc.detail) or one_line(exc), **extra)
    for header in ("WWW-Authenticate", "Retry-After", "Allow"):
        if header in response:
            result[header] = response[header]
    return result


def not_found(request, exception=None):
    """Unknown paths under /api/v1/ answer a problem too, not Django's HTML page."""
    return problem(404, "No such API endpoint.")
