#!/usr/bin/env python
"""The memory engine against Django's cache engine on LocMemCache, side by side.

    python bench/memory_vs_locmem.py [--number N] [--repeat R]

Standalone: it configures Django itself and needs nothing but Django and this
repository. For each scenario and engine it times ``number`` requests,
``repeat`` times, the engines taking turns, and reports the median time per
request and the ratio cache / memory (above 1: the memory engine is faster).

Each request goes through the whole of Django's request cycle with the test
``Client`` (handler, URL resolver, ``SessionMiddleware``, view), and again
through ``SessionMiddleware`` and the view alone (``RequestFactory``), where the
session is a larger part of the cost. The session is of a typical size: the
three auth keys ``django.contrib.auth.login`` sets plus a small cart.

- create: no cookie; the view logs in and fills the cart (a new session);
- read:   the session cookie; the view reads the user id and the cart;
- write:  the session cookie; the view changes a quantity in the cart.

Both stores hold up to 10_000 sessions and are emptied before each round, so
neither evicts while timed. Last, tracemalloc measures the memory that 10_000
stored sessions take in each store, divided by 10_000.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import platform
import statistics
import sys
import time
import timeit
import tracemalloc
from collections.abc import Callable
from importlib import import_module
from pathlib import Path
from typing import Any

import django
from django.conf import settings

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ENGINES = {
    "memory": "django_prologue_sessions.backends.memory",
    "cache": "django.contrib.sessions.backends.cache",
}
MAX_SESSIONS = 10_000

settings.configure(
    SECRET_KEY="benchmark-not-secret",
    ALLOWED_HOSTS=["testserver"],
    INSTALLED_APPS=["django.contrib.sessions"],
    MIDDLEWARE=["django.contrib.sessions.middleware.SessionMiddleware"],
    ROOT_URLCONF=__name__,
    CACHES={
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "OPTIONS": {"MAX_ENTRIES": MAX_SESSIONS},
        }
    },
    PROLOGUE_SESSIONS_MEMORY_MAX_SESSIONS=MAX_SESSIONS,
    USE_TZ=True,
)
django.setup()

from django.contrib.sessions.middleware import SessionMiddleware  # noqa: E402
from django.core.cache import cache  # noqa: E402
from django.http import HttpRequest, HttpResponse  # noqa: E402
from django.test import Client, RequestFactory, override_settings  # noqa: E402
from django.urls import path  # noqa: E402

from django_prologue_sessions.backends.memory import (  # noqa: E402
    SessionStore as MemorySessionStore,
)

COOKIE = settings.SESSION_COOKIE_NAME


def typical_session() -> dict[str, Any]:
    return {
        "_auth_user_id": "4217",
        "_auth_user_backend": "django.contrib.auth.backends.ModelBackend",
        "_auth_user_hash": hashlib.sha256(b"password hash").hexdigest(),
        "cart": {
            "currency": "EUR",
            "items": [
                {"sku": "BOOK-0042", "qty": 1, "price": "24.90"},
                {"sku": "MUG-0007", "qty": 2, "price": "9.50"},
                {"sku": "TEE-0113-L", "qty": 1, "price": "19.00"},
            ],
        },
    }


def create_view(request: HttpRequest) -> HttpResponse:
    request.session.update(typical_session())
    return HttpResponse("created")


def read_view(request: HttpRequest) -> HttpResponse:
    user_id = request.session.get("_auth_user_id")
    items = len(request.session.get("cart", {}).get("items", []))
    return HttpResponse(f"{user_id} {items}")


def write_view(request: HttpRequest) -> HttpResponse:
    cart = request.session["cart"]
    cart["items"][1]["qty"] = cart["items"][1]["qty"] % 9 + 1
    request.session["cart"] = cart
    return HttpResponse("written")


VIEWS = {"create": create_view, "read": read_view, "write": write_view}
urlpatterns = [path(f"{name}/", view) for name, view in VIEWS.items()]


def clear_stores() -> None:
    MemorySessionStore.clear_all()
    cache.clear()


def new_session_key(engine: str) -> str:
    store = import_module(ENGINES[engine]).SessionStore()
    store.update(typical_session())
    store.save()
    key: str = store.session_key
    return key


def client_request(engine: str, scenario: str) -> Callable[[], Any]:
    client = Client()
    url = f"/{scenario}/"
    if scenario == "create":

        def create() -> Any:
            client.cookies.clear()  # or the next request reuses the session
            return client.get(url)

        return create
    client.cookies[COOKIE] = new_session_key(engine)
    return lambda: client.get(url)


def middleware_request(engine: str, scenario: str) -> Callable[[], Any]:
    middleware = SessionMiddleware(VIEWS[scenario])  # reads SESSION_ENGINE now
    factory = RequestFactory()
    key = None if scenario == "create" else new_session_key(engine)

    def request() -> Any:
        req = factory.get(f"/{scenario}/")
        if key:
            req.COOKIES[COOKIE] = key
        return middleware(req)

    return request


def time_scenario(
    make: Callable[[str, str], Callable[[], Any]],
    scenario: str,
    number: int,
    repeat: int,
) -> tuple[dict[str, float], float]:
    """Median microseconds per request by engine, and the median ratio.

    The engines take turns, one short round each, and the ratio is taken
    round by round, so that the machine's drift in speed hits both alike. The
    clock is this process's CPU time: time spent waiting for a busy machine's
    CPU is not counted.
    """
    requests = {}
    for engine, module in ENGINES.items():
        with override_settings(SESSION_ENGINE=module):
            requests[engine] = make(engine, scenario)
            requests[engine]()  # warm up, and check it works
    times: dict[str, list[float]] = {engine: [] for engine in ENGINES}
    for round_ in range(repeat):
        order = list(ENGINES) if round_ % 2 == 0 else list(reversed(ENGINES))
        for engine in order:
            with override_settings(SESSION_ENGINE=ENGINES[engine]):
                if scenario == "create":
                    clear_stores()
                timer = timeit.Timer(requests[engine], timer=time.process_time)
                seconds = timer.timeit(number)
            times[engine].append(seconds / number * 1e6)
    ratio = statistics.median(
        cache / memory
        for memory, cache in zip(times["memory"], times["cache"], strict=True)
    )
    return {engine: statistics.median(t) for engine, t in times.items()}, ratio


def bytes_per_session(engine: str, count: int = MAX_SESSIONS) -> float:
    with override_settings(SESSION_ENGINE=ENGINES[engine]):
        clear_stores()
        session_store = import_module(ENGINES[engine]).SessionStore
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(count):
            session = session_store()
            session.update(typical_session())
            session.save()
        del session
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        clear_stores()
    return (after - before) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--number", type=int, default=200, help="per round")
    parser.add_argument("--repeat", type=int, default=41, help="rounds")
    args = parser.parse_args()
    if args.number >= MAX_SESSIONS:  # a create round starts on empty stores
        parser.error(f"--number must stay below {MAX_SESSIONS} (no eviction)")

    print(
        f"Python {platform.python_version()}, Django {django.get_version()}, "
        f"{platform.machine()}; {args.repeat} rounds of {args.number} requests "
        "per engine, taking turns.\nMedian CPU microseconds per request; "
        "cache/memory "
        "is the median of the round-by-round ratios (above 1: memory is faster)."
    )
    print(f"{'':24}{'memory':>10}{'cache':>10}{'cache/memory':>14}")
    for label, make in (
        ("test Client", client_request),
        ("middleware+view", middleware_request),
    ):
        for scenario in VIEWS:
            result, ratio = time_scenario(make, scenario, args.number, args.repeat)
            print(
                f"{label + ' ' + scenario:24}{result['memory']:>10.1f}"
                f"{result['cache']:>10.1f}{ratio:>13.2f}x"
            )
    size = len(MemorySessionStore().serializer().dumps(typical_session()))
    print(f"\nBytes per stored session ({size} bytes of JSON data), tracemalloc:")
    for engine in ENGINES:
        print(f"  {engine:8}{bytes_per_session(engine):>8.0f}")


if __name__ == "__main__":
    main()
