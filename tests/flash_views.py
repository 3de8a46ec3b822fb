"""Views that flash and read messages through the real middleware stack.

Mounted under ``flash/`` by tests/urls.py. Levels come as repeated ``level``
parameters: a name, or digits for a level integer. Under ``flash/async/`` the
same views are async, on the async flash functions.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.messages.storage.base import Message
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.template import engines
from django.urls import path
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_POST

from django_prologue_sessions.flash import (
    Level,
    Levels,
    aflash,
    aget_flashed,
    apeek_flashed,
    apop_flashed,
    flash,
    get_flashed,
    peek_flashed,
    pop_flashed,
    resolve_level,
)


def _level(value: str) -> Level:
    return int(value) if value.isdigit() else value


def _levels(request: HttpRequest) -> Levels:
    levels = [_level(value) for value in request.GET.getlist("level")]
    return levels or None


def _as_json(message: Message) -> list[object]:
    return [message.level, str(message), message.tags]


def _pairs(request: HttpRequest) -> list[tuple[Level, str]]:
    pairs = zip(
        request.POST.getlist("level"), request.POST.getlist("message"), strict=True
    )
    return [
        (_level(level), mark_safe(text) if request.POST.get("safe") else text)
        for level, text in pairs
    ]


def _next(request: HttpRequest) -> HttpResponseRedirect:
    return HttpResponseRedirect(request.POST.get("next", "/flash/get/"))


@require_POST
def add(request: HttpRequest) -> HttpResponse:
    """Flash each ``level``/``message`` pair, then redirect to ``next``.

    With ``api=messages`` the messages go in through django.contrib.messages
    instead, to show that the two are one system; with ``safe=1`` they are
    marked safe.
    """
    for level, message in _pairs(request):
        if request.POST.get("api") == "messages":
            messages.add_message(request, resolve_level(level), message)
        else:
            flash(request, message, level)
    return _next(request)


def get(request: HttpRequest) -> JsonResponse:
    return JsonResponse(
        [_as_json(m) for m in get_flashed(request, _levels(request))], safe=False
    )


def peek(request: HttpRequest) -> JsonResponse:
    return JsonResponse(
        [_as_json(m) for m in peek_flashed(request, _levels(request))], safe=False
    )


def pop(request: HttpRequest) -> JsonResponse:
    message = pop_flashed(request, _levels(request))
    return JsonResponse(_as_json(message) if message else None, safe=False)


def render_string(request: HttpRequest) -> HttpResponse:
    """Render the ``template`` parameter with the ``using`` engine (Django's)."""
    engine = engines[request.GET.get("using", "django")]
    template = engine.from_string(request.GET["template"])
    return HttpResponse(template.render(request=request))


def template(request: HttpRequest, name: str) -> HttpResponse:
    """Render ``tests/templates/flash/<name>.html``, or Jinja2's with ``?using``."""
    engine = request.GET.get("using")
    suffix = ".jinja" if engine == "jinja2" else ".html"
    return render(request, f"flash/{name}{suffix}", using=engine)


@require_POST
async def async_add(request: HttpRequest) -> HttpResponse:
    for level, message in _pairs(request):
        if request.POST.get("api") == "messages":
            messages.add_message(request, resolve_level(level), message)
        else:
            await aflash(request, message, level)
    return _next(request)


async def async_get(request: HttpRequest) -> JsonResponse:
    found = await aget_flashed(request, _levels(request))
    return JsonResponse([_as_json(m) for m in found], safe=False)


async def async_peek(request: HttpRequest) -> JsonResponse:
    found = await apeek_flashed(request, _levels(request))
    return JsonResponse([_as_json(m) for m in found], safe=False)


async def async_pop(request: HttpRequest) -> JsonResponse:
    message = await apop_flashed(request, _levels(request))
    return JsonResponse(_as_json(message) if message else None, safe=False)


async def async_template(request: HttpRequest, name: str) -> HttpResponse:
    # The pattern of docs/async.md: loading the messages first, with no I/O
    # on the event loop, leaves the template's tags and loop in memory.
    await apeek_flashed(request)
    return template(request, name)


urlpatterns = [
    path("add/", add),
    path("get/", get),
    path("peek/", peek),
    path("pop/", pop),
    path("render/", render_string),
    path("template/<slug:name>/", template),
    path("async/add/", async_add),
    path("async/get/", async_get),
    path("async/peek/", async_peek),
    path("async/pop/", async_pop),
    path("async/template/<slug:name>/", async_template),
]
