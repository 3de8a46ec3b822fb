"""The async views of the ASGI benchmark (``bench/asgi.py``).

``/`` adds one to a visit counter in the session, as an async view would:
through the session's async methods. ``/bench/visits/`` reads the counter,
so that the benchmark can check that no visit was lost.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import path

VISITS = "visits"


async def visit(request: HttpRequest) -> HttpResponse:
    visits = await request.session.aget(VISITS, 0) + 1
    await request.session.aset(VISITS, visits)
    return HttpResponse(str(visits), content_type="text/plain")


async def visits(request: HttpRequest) -> HttpResponse:
    count = await request.session.aget(VISITS, 0)
    return HttpResponse(str(count), content_type="text/plain")


urlpatterns = [
    path("", visit),
    path("bench/visits/", visits),
]
