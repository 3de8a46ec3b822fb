"""The example site's URLs, and one that reads a visitor's visit counter.

The home page adds one to the counter in the session on every visit; the load
test compares each client's final counter with the visits it made, so that a
lost update shows.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import include, path
from prologue_example.views import VISITS


def visits(request: HttpRequest) -> HttpResponse:
    return HttpResponse(str(request.session.get(VISITS, 0)), content_type="text/plain")


urlpatterns = [
    path("bench/visits/", visits),
    path("", include("prologue_example.urls")),
]
