"""Tiny views that exercise a session through the real middleware."""

from __future__ import annotations

import json

from django.http import HttpRequest, HttpResponse, JsonResponse


def session_set(request: HttpRequest) -> HttpResponse:
    """Set every query parameter as a session key."""
    for key, value in request.GET.items():
        request.session[key] = value
    return HttpResponse("ok")


def session_get(request: HttpRequest) -> JsonResponse:
    """Return the whole session as JSON."""
    return JsonResponse(dict(request.session.items()))


def session_read(request: HttpRequest) -> HttpResponse:
    """Read one key without changing anything."""
    return HttpResponse(json.dumps(request.session.get("key")))


def session_untouched(request: HttpRequest) -> HttpResponse:
    return HttpResponse("untouched")


def session_flush(request: HttpRequest) -> HttpResponse:
    request.session.flush()
    return HttpResponse("flushed")


def session_cycle(request: HttpRequest) -> HttpResponse:
    request.session.cycle_key()
    return HttpResponse("cycled")


def session_expiry(request: HttpRequest) -> HttpResponse:
    request.session["key"] = "value"
    request.session.set_expiry(int(request.GET["seconds"]))
    return HttpResponse("ok")
