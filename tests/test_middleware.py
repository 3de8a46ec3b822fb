"""``django_prologue_sessions.middleware.SessionMiddleware``, sync and async.

``SessionMiddlewareTests`` is Django's own test case of its session
middleware, ported from Django's test suite: ``tests/sessions_tests/tests.py``,
class ``SessionMiddlewareTests``, Django 5.2 (the 5.2 LTS branch; the
middleware is the same in Django 6.0 and 6.1). Django is BSD-licensed:
Copyright (c) Django Software Foundation and individual contributors. All
rights reserved.

The port keeps Django's test bodies and assertions, unannotated as Django's
are; the one change is that a test makes its middleware with
``self.SessionMiddleware(...)`` instead of the module's
``SessionMiddleware(...)``, so that the same tests run three times:

- ``DjangoSessionMiddlewareTests``: on Django's middleware, which shows that
  the port asks what Django asks;
- ``SyncSessionMiddlewareTests``: on ours, with a sync ``get_response`` (WSGI);
- ``AsyncSessionMiddlewareTests``: on ours in async mode: ``get_response`` is
  a coroutine function, and each call awaits ``middleware(request)`` (and
  ``aprocess_response()`` where Django calls ``process_response()``).

As in Django's test suite, the engine is Django's database engine. The tests
after them are ours: the async path's cookies against Django's for every
expiry setting, no thread hop and no sync session I/O on the event loop, and
``SessionInterrupted`` with our engines.
"""

# The port keeps Django's string formatting.
# ruff: noqa: UP031, UP032

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from http import cookies
from typing import Any, ClassVar

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.conf import settings
from django.contrib.sessions.backends.base import SessionBase
from django.contrib.sessions.backends.db import SessionStore as DatabaseSession
from django.contrib.sessions.exceptions import SessionInterrupted
from django.contrib.sessions.middleware import (
    SessionMiddleware as DjangoSessionMiddleware,
)
from django.contrib.sessions.models import Session
from django.core.exceptions import SynchronousOnlyOperation
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.test import RequestFactory, TestCase, override_settings
from django.utils.module_loading import import_string

from bench.thread_hops import ThreadHops, count_thread_hops
from django_prologue_sessions.middleware import SessionMiddleware

GetResponse = Callable[[HttpRequest], HttpResponseBase]


class AsyncDriven:
    """Our middleware in async mode, called like a sync one by a test body.

    ``get_response`` becomes a coroutine function (the view runs through
    ``sync_to_async``, as Django runs a sync view under ASGI), so the
    middleware takes its async path; a call awaits ``middleware(request)`` on
    an event loop (``async_to_sync``, which runs thread-sensitive code such as
    the database engine's on the test's thread).
    """

    def __init__(self, get_response: GetResponse) -> None:
        async def aget_response(request: HttpRequest) -> HttpResponseBase:
            return await sync_to_async(get_response)(request)

        self.middleware = SessionMiddleware(aget_response)

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        async def handle() -> HttpResponseBase:
            pending = self.middleware(request)
            assert inspect.isawaitable(pending), "not the async path"
            return await pending

        return async_to_sync(handle)()

    def process_response(
        self, request: HttpRequest, response: HttpResponseBase
    ) -> HttpResponseBase:
        return async_to_sync(self.middleware.aprocess_response)(request, response)


@override_settings(SESSION_ENGINE="django.contrib.sessions.backends.db")
class SessionMiddlewareTests(TestCase):
    """Django 5.2's ``SessionMiddlewareTests``; see the module docstring."""

    __test__ = False
    SessionMiddleware: ClassVar[Callable[[GetResponse], Any]]

    request_factory = RequestFactory()

    @staticmethod
    def get_response_touching_session(request):
        request.session["hello"] = "world"
        return HttpResponse("Session test")

    @override_settings(SESSION_COOKIE_SECURE=True)
    def test_secure_session_cookie(self):
        request = self.request_factory.get("/")
        middleware = self.SessionMiddleware(self.get_response_touching_session)

        # Handle the response through the middleware
        response = middleware(request)
        self.assertIs(response.cookies[settings.SESSION_COOKIE_NAME]["secure"], True)

    @override_settings(SESSION_COOKIE_HTTPONLY=True)
    def test_httponly_session_cookie(self):
        request = self.request_factory.get("/")
        middleware = self.SessionMiddleware(self.get_response_touching_session)

        # Handle the response through the middleware
        response = middleware(request)
        self.assertIs(response.cookies[settings.SESSION_COOKIE_NAME]["httponly"], True)
        self.assertIn(
            cookies.Morsel._reserved["httponly"],
            str(response.cookies[settings.SESSION_COOKIE_NAME]),
        )

    @override_settings(SESSION_COOKIE_SAMESITE="Strict")
    def test_samesite_session_cookie(self):
        request = self.request_factory.get("/")
        middleware = self.SessionMiddleware(self.get_response_touching_session)
        response = middleware(request)
        self.assertEqual(
            response.cookies[settings.SESSION_COOKIE_NAME]["samesite"], "Strict"
        )

    @override_settings(SESSION_COOKIE_HTTPONLY=False)
    def test_no_httponly_session_cookie(self):
        request = self.request_factory.get("/")
        middleware = self.SessionMiddleware(self.get_response_touching_session)
        response = middleware(request)
        self.assertEqual(response.cookies[settings.SESSION_COOKIE_NAME]["httponly"], "")
        self.assertNotIn(
            cookies.Morsel._reserved["httponly"],
            str(response.cookies[settings.SESSION_COOKIE_NAME]),
        )

    def test_session_save_on_500(self):
        def response_500(request):
            response = HttpResponse("Horrible error")
            response.status_code = 500
            request.session["hello"] = "world"
            return response

        request = self.request_factory.get("/")
        self.SessionMiddleware(response_500)(request)

        # The value wasn't saved above.
        self.assertNotIn("hello", request.session.load())

    def test_session_save_on_5xx(self):
        def response_503(request):
            response = HttpResponse("Service Unavailable")
            response.status_code = 503
            request.session["hello"] = "world"
            return response

        request = self.request_factory.get("/")
        self.SessionMiddleware(response_503)(request)

        # The value wasn't saved above.
        self.assertNotIn("hello", request.session.load())

    def test_session_update_error_redirect(self):
        def response_delete_session(request):
            request.session = DatabaseSession()
            request.session.save(must_create=True)
            request.session.delete()
            return HttpResponse()

        request = self.request_factory.get("/foo/")
        middleware = self.SessionMiddleware(response_delete_session)

        msg = (
            "The request's session was deleted before the request completed. "
            "The user may have logged out in a concurrent request, for example."
        )
        with self.assertRaisesMessage(SessionInterrupted, msg):
            # Handle the response through the middleware. It will try to save
            # the deleted session which will cause an UpdateError that's caught
            # and raised as a SessionInterrupted.
            middleware(request)

    def test_session_delete_on_end(self):
        def response_ending_session(request):
            request.session.flush()
            return HttpResponse("Session test")

        request = self.request_factory.get("/")
        middleware = self.SessionMiddleware(response_ending_session)

        # Before deleting, there has to be an existing cookie
        request.COOKIES[settings.SESSION_COOKIE_NAME] = "abc"

        # Handle the response through the middleware
        response = middleware(request)

        # The cookie was deleted, not recreated.
        # A deleted cookie header looks like:
        #  "Set-Cookie: sessionid=; expires=Thu, 01 Jan 1970 00:00:00 GMT; "
        #  "Max-Age=0; Path=/"
        self.assertEqual(
            'Set-Cookie: {}=""; expires=Thu, 01 Jan 1970 00:00:00 GMT; '
            "Max-Age=0; Path=/; SameSite={}".format(
                settings.SESSION_COOKIE_NAME,
                settings.SESSION_COOKIE_SAMESITE,
            ),
            str(response.cookies[settings.SESSION_COOKIE_NAME]),
        )
        # SessionMiddleware sets 'Vary: Cookie' to prevent the 'Set-Cookie'
        # from being cached.
        self.assertEqual(response.headers["Vary"], "Cookie")

    @override_settings(
        SESSION_COOKIE_DOMAIN=".example.local", SESSION_COOKIE_PATH="/example/"
    )
    def test_session_delete_on_end_with_custom_domain_and_path(self):
        def response_ending_session(request):
            request.session.flush()
            return HttpResponse("Session test")

        request = self.request_factory.get("/")
        middleware = self.SessionMiddleware(response_ending_session)

        # Before deleting, there has to be an existing cookie
        request.COOKIES[settings.SESSION_COOKIE_NAME] = "abc"

        # Handle the response through the middleware
        response = middleware(request)

        # The cookie was deleted, not recreated.
        # A deleted cookie header with a custom domain and path looks like:
        #  Set-Cookie: sessionid=; Domain=.example.local;
        #              expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0;
        #              Path=/example/
        self.assertEqual(
            'Set-Cookie: {}=""; Domain=.example.local; expires=Thu, '
            "01 Jan 1970 00:00:00 GMT; Max-Age=0; Path=/example/; SameSite={}".format(
                settings.SESSION_COOKIE_NAME,
                settings.SESSION_COOKIE_SAMESITE,
            ),
            str(response.cookies[settings.SESSION_COOKIE_NAME]),
        )

    def test_flush_empty_without_session_cookie_doesnt_set_cookie(self):
        def response_ending_session(request):
            request.session.flush()
            return HttpResponse("Session test")

        request = self.request_factory.get("/")
        middleware = self.SessionMiddleware(response_ending_session)

        # Handle the response through the middleware
        response = middleware(request)

        # A cookie should not be set.
        self.assertEqual(response.cookies, {})
        # The session is accessed so "Vary: Cookie" should be set.
        self.assertEqual(response.headers["Vary"], "Cookie")

    def test_empty_session_saved(self):
        """
        If a session is emptied of data but still has a key, it should still
        be updated.
        """

        def response_set_session(request):
            # Set a session key and some data.
            request.session["foo"] = "bar"
            return HttpResponse("Session test")

        request = self.request_factory.get("/")
        middleware = self.SessionMiddleware(response_set_session)

        # Handle the response through the middleware.
        response = middleware(request)
        self.assertEqual(tuple(request.session.items()), (("foo", "bar"),))
        # A cookie should be set, along with Vary: Cookie.
        self.assertIn(
            "Set-Cookie: sessionid=%s" % request.session.session_key,
            str(response.cookies),
        )
        self.assertEqual(response.headers["Vary"], "Cookie")

        # Empty the session data.
        del request.session["foo"]
        # Handle the response through the middleware.
        response = HttpResponse("Session test")
        response = middleware.process_response(request, response)
        self.assertEqual(dict(request.session.values()), {})
        session = Session.objects.get(session_key=request.session.session_key)
        self.assertEqual(session.get_decoded(), {})
        # While the session is empty, it hasn't been flushed so a cookie should
        # still be set, along with Vary: Cookie.
        self.assertGreater(len(request.session.session_key), 8)
        self.assertIn(
            "Set-Cookie: sessionid=%s" % request.session.session_key,
            str(response.cookies),
        )
        self.assertEqual(response.headers["Vary"], "Cookie")


class DjangoSessionMiddlewareTests(SessionMiddlewareTests):
    __test__ = True
    SessionMiddleware = DjangoSessionMiddleware


class SyncSessionMiddlewareTests(SessionMiddlewareTests):
    __test__ = True
    SessionMiddleware = SessionMiddleware


class AsyncSessionMiddlewareTests(SessionMiddlewareTests):
    __test__ = True
    SessionMiddleware = AsyncDriven


# Ours: the same cookies as Django's for every way a session ends a request,
# no thread hop, no sync session I/O on the event loop.

# pytest-django's ``settings`` fixture.
SettingsWrapper = Any

OUR_ENGINES = {
    "memory": ("django_prologue_sessions.backends.memory", False),
    "signed_cookies": ("django_prologue_sessions.backends.signed_cookies", False),
    "redis": ("django_prologue_sessions.backends.redis", True),
}


@pytest.fixture(params=list(OUR_ENGINES))
def engine(
    request: pytest.FixtureRequest, settings: SettingsWrapper
) -> type[SessionBase]:
    """One of our engines, as ``SESSION_ENGINE``; its ``SessionStore``."""
    module, uses_redis = OUR_ENGINES[request.param]
    settings.SESSION_ENGINE = module
    if uses_redis:
        settings.SESSION_REDIS = {"url": request.getfixturevalue("redis_url")}
    store: type[SessionBase] = import_string(f"{module}.SessionStore")
    return store


def saved_session(store: type[SessionBase], **data: Any) -> SessionBase:
    session = store()
    session.update(data)
    session.save()
    return session


def request_with(session: SessionBase | None) -> HttpRequest:
    request = RequestFactory().get("/")
    if session is not None:
        request.COOKIES[settings.SESSION_COOKIE_NAME] = str(session.session_key)
    return request


def cookie_as_seen(response: HttpResponseBase, session_key: str | None) -> Any:
    """The session cookie's attributes, the key and the expiry date as placeholders."""
    morsel = response.cookies.get(settings.SESSION_COOKIE_NAME)
    if morsel is None:
        return None
    seen = dict(morsel)
    seen["expires"] = "(a date)" if seen["expires"] else ""
    value = "(the session key)" if morsel.value == session_key else morsel.value
    return value, seen


def views() -> dict[str, Callable[[HttpRequest], HttpResponse]]:
    """A view for each way a request can leave its session."""

    def modified(request: HttpRequest) -> HttpResponse:
        request.session["cat"] = "dog"
        return HttpResponse()

    def read(request: HttpRequest) -> HttpResponse:
        return HttpResponse(str(request.session.get("cat")))

    def untouched(request: HttpRequest) -> HttpResponse:
        return HttpResponse()

    def expiry_in_300_seconds(request: HttpRequest) -> HttpResponse:
        request.session.set_expiry(300)
        return HttpResponse()

    def expiry_at_browser_close(request: HttpRequest) -> HttpResponse:
        request.session.set_expiry(0)
        return HttpResponse()

    def flushed(request: HttpRequest) -> HttpResponse:
        request.session.flush()
        return HttpResponse()

    def cycled(request: HttpRequest) -> HttpResponse:
        request.session.cycle_key()
        return HttpResponse()

    def emptied(request: HttpRequest) -> HttpResponse:
        request.session.clear()
        return HttpResponse()

    return {view.__name__: view for view in locals().values() if callable(view)}


@pytest.mark.parametrize("existing", [False, True], ids=["new", "existing"])
@pytest.mark.parametrize(
    "setting",
    [
        {},
        {"SESSION_SAVE_EVERY_REQUEST": True},
        {"SESSION_EXPIRE_AT_BROWSER_CLOSE": True},
        {"SESSION_COOKIE_AGE": 60, "SESSION_COOKIE_SECURE": True},
    ],
    ids=["defaults", "save-every-request", "expire-at-browser-close", "age-secure"],
)
@pytest.mark.parametrize("view_name", list(views()))
def test_the_async_path_answers_as_djangos_middleware(
    engine: type[SessionBase],
    settings: SettingsWrapper,
    view_name: str,
    setting: dict[str, Any],
    existing: bool,
) -> None:
    for name, value in setting.items():
        setattr(settings, name, value)
    view = views()[view_name]
    answers = []
    for middleware in (DjangoSessionMiddleware, SessionMiddleware, AsyncDriven):
        session = saved_session(engine, cat="cat") if existing else None
        request = request_with(session)
        response = middleware(view)(request)
        key = request.session.session_key
        stored = engine(key).load() if key else None
        answers.append(
            (
                cookie_as_seen(response, key),
                response.headers.get("Vary"),
                stored,
                # Whether the key changed, not the key: each run has its own.
                session is not None and key != session.session_key,
            )
        )
    django, ours_sync, ours_async = answers
    assert ours_sync == django
    assert ours_async == django


def handle(
    view: Callable[[HttpRequest], Awaitable[HttpResponseBase]],
    request: HttpRequest,
    middleware: type[DjangoSessionMiddleware] = SessionMiddleware,
) -> HttpResponseBase:
    """``view`` through ``middleware`` on an event loop, as under ASGI."""

    async def through_middleware() -> HttpResponseBase:
        return await middleware(view)(request)  # type: ignore[no-any-return]

    return async_to_sync(through_middleware)()


async def async_visit(request: HttpRequest) -> HttpResponse:
    visits = await request.session.aget("visits", 0) + 1
    await request.session.aset("visits", visits)
    return HttpResponse(str(visits))


def test_the_async_path_makes_no_thread_hop(engine: type[SessionBase]) -> None:
    def hops_of(middleware: type[DjangoSessionMiddleware]) -> ThreadHops:
        async def counted_visit(request: HttpRequest) -> HttpResponseBase:
            with count_thread_hops() as hops:
                response = await middleware(async_visit)(request)
            assert response.content == b"2"
            counted.append(hops)
            return response

        counted: list[ThreadHops] = []
        handle(counted_visit, request_with(saved_session(engine, visits=1)))
        return counted[0]

    ours = hops_of(SessionMiddleware)
    assert ours.by_function == {}
    assert ours.threads_started == 0
    # Django's, on the same view and engine, hops twice.
    assert hops_of(DjangoSessionMiddleware).by_function == {
        "django.contrib.sessions.middleware.SessionMiddleware.process_request": 1,
        "django.contrib.sessions.middleware.SessionMiddleware.process_response": 1,
    }


def test_the_async_path_does_no_sync_session_io_on_the_loop(
    settings: SettingsWrapper, redis_url: str
) -> None:
    # tests.loop_guard: our Redis engine, whose sync I/O raises
    # SynchronousOnlyOperation on an event loop's thread.
    from tests.loop_guard import SessionStore

    settings.SESSION_ENGINE = "tests.loop_guard"
    settings.SESSION_REDIS = {"url": redis_url}
    settings.SESSION_SAVE_EVERY_REQUEST = True

    async def untouched(request: HttpRequest) -> HttpResponse:
        return HttpResponse()

    async def flushed(request: HttpRequest) -> HttpResponse:
        await request.session.aflush()
        return HttpResponse()

    async def cycled(request: HttpRequest) -> HttpResponse:
        await request.session.acycle_key()
        return HttpResponse()

    for view in (untouched, async_visit, cycled):
        session = saved_session(SessionStore, visits=1)
        request = request_with(session)
        response = handle(view, request)
        key = request.session.session_key
        assert response.cookies[settings.SESSION_COOKIE_NAME].value == key
        assert response.cookies[settings.SESSION_COOKIE_NAME]["max-age"] == (
            settings.SESSION_COOKIE_AGE
        )
        expected = 2 if view is async_visit else 1
        assert SessionStore(key).load() == {"visits": expected}, view.__name__

    session = saved_session(SessionStore, visits=1)
    request = request_with(session)
    response = handle(flushed, request)
    assert response.cookies[settings.SESSION_COOKIE_NAME]["max-age"] == 0
    assert SessionStore(session.session_key).load() == {}

    # Django's process_response, called on the loop, would load the untouched
    # session with the sync load(): the guard stops it.
    request = request_with(saved_session(SessionStore, visits=1))

    async def djangos_process_response_on_the_loop() -> None:
        middleware = DjangoSessionMiddleware(untouched)
        middleware.process_request(request)
        middleware.process_response(request, HttpResponse())

    with pytest.raises(SynchronousOnlyOperation):
        async_to_sync(djangos_process_response_on_the_loop)()


@pytest.mark.parametrize("engine", ["memory", "redis"], indirect=True)
def test_a_session_deleted_meanwhile_is_interrupted(engine: type[SessionBase]) -> None:
    session = saved_session(engine, visits=1)
    request = request_with(session)

    async def logged_out_elsewhere(request: HttpRequest) -> HttpResponse:
        await request.session.aset("visits", 2)
        await engine(session.session_key).adelete()
        return HttpResponse()

    with pytest.raises(SessionInterrupted):
        handle(logged_out_elsewhere, request)
    assert engine(session.session_key).load() == {}
