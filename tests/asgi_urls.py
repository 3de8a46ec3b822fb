"""The async views that ``tests/test_asgi.py`` requests under uvicorn.

Levels and messages come as query parameters. ``flash/get-sync/`` is the
pitfall of ``docs/async.md``: a sync flash function in an async view, which
reads the session with the engine's sync ``load()`` on the event loop.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template import engines
from django.urls import path

from django_prologue_sessions.flash import (
    aflash,
    aget_flashed,
    apeek_flashed,
    get_flashed,
)

PAGE = (
    '{% load flash %}{% get_flashed "error" as errors %}'
    "{% for m in errors %}[{{ m }}]{% endfor %}"
    "|{% for m in messages %}[{{ m.tags }}:{{ m }}]{% endfor %}"
)


async def count(request: HttpRequest) -> HttpResponse:
    visits = await request.session.aget("visits", 0) + 1
    await request.session.aset("visits", visits)
    return HttpResponse(str(visits))


async def add(request: HttpRequest) -> HttpResponse:
    await aflash(request, request.GET["message"], request.GET["level"])
    return HttpResponse("ok")


async def get(request: HttpRequest) -> JsonResponse:
    found = await aget_flashed(request, request.GET.getlist("level") or None)
    return JsonResponse([[m.level, m.message] for m in found], safe=False)


async def get_sync(request: HttpRequest) -> JsonResponse:
    found = get_flashed(request, request.GET.getlist("level") or None)
    return JsonResponse([[m.level, m.message] for m in found], safe=False)


async def page(request: HttpRequest) -> HttpResponse:
    await apeek_flashed(request)
    return HttpResponse(engines["django"].from_string(PAGE).render(request=request))


async def untouched(request: HttpRequest) -> HttpResponse:
    return HttpResponse("untouched")


urlpatterns = [
    path("count/", count),
    path("flash/add/", add),
    path("flash/get/", get),
    path("flash/get-sync/", get_sync),
    path("flash/page/", page),
    path("untouched/", untouched),
]
